import { closeAll } from '../../checkpoint/discover.js';
import { renderMerge } from '../../report/merge.js';
import { Terminal } from '../../report/terminal.js';
import { mergeOutputPlan, mergeSoup } from '../../soup/strategies/merge.js';
import { isFolderOutput, writeOutcome } from '../../soup/write.js';
import { mergeOptions, mergeRecipe } from '../merge-options.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';
import { prepareSoupOutput } from '../output.js';

// soup evolve writes the same file beside its soups.

const schema = commonOptions.extend(soupOutputOptions.shape).extend(mergeOptions.shape);

export async function runMerge(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const { config, opened, source } = await mergeRecipe(inputs, options, discoverOptions(options, terminal));
  try {
    const dtype = options.dtype ?? config.outDtype ?? config.dtype;
    const { shape, ...checked } = mergeOutputPlan(opened);
    const output = await prepareSoupOutput(shape, { ...options, dtype }, terminal, checked);
    const made = await mergeSoup(config, opened, output, {
      source,
      dtype,
      randomSeed: options.randomSeed,
      layerPattern: options.layerPattern,
      allowNonFinite: options.allowNonfinite,
      command: commandArguments(),
      onProgress: terminal.progress(),
      signal,
    });
    const written = await writeOutcome(opened.all, output, made, signal, made.moreFiles);
    terminal.endProgress();
    const seconds = (performance.now() - started) / 1000;
    renderMerge(terminal, made.document, { ...written, seconds, folder: isFolderOutput(output.target) });
  } finally {
    await closeAll(opened.all);
  }
}
