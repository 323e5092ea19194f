import { loadDataset } from '../../data/dataset.js';
import { overviewDataset } from '../../data/overview.js';
import { pickPreprocessing } from '../../data/preprocess.js';
import { renderData, reportDecoding } from '../../report/data.js';
import { Terminal } from '../../report/terminal.js';
import { commonOptions, parseOptions } from '../options.js';
import { preprocessingOptions } from '../preprocessing.js';

const schema = commonOptions.merge(preprocessingOptions);

/** `soup data DATA`: what an evaluator would see, to check preprocessing before a long run. */
export async function runData(target: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const dataset = await loadDataset(target, pickPreprocessing(options), { onProgress: terminal.progress(), signal });
  terminal.endProgress();
  reportDecoding(terminal, dataset, (performance.now() - started) / 1000);
  renderData(terminal, await overviewDataset(dataset, signal));
}
