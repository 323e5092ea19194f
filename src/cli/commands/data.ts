import { loadDataset, type Dataset } from '../../data/dataset.js';
import { imageDims } from '../../data/layout.js';
import { describePreprocessing, pickPreprocessing } from '../../data/preprocess.js';
import { summarizeDataset } from '../../data/summary.js';
import { formatBytes, formatShape, table } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { commonOptions, parseOptions } from '../options.js';
import { preprocessingOptions } from '../preprocessing.js';

const schema = commonOptions.merge(preprocessingOptions);

/** The input shapes an image data set gives in each layout, [N, ...]; none for data that is not an image. */
function inputShapes(dataset: Dataset): { nchw: (number | 'N')[]; nhwc: (number | 'N')[] } | undefined {
  const image = imageDims({ shape: dataset.sampleShape, layout: dataset.sampleLayout });
  if (image === undefined) return undefined;
  const { height, width, channels } = image;
  return { nchw: ['N', channels, height, width], nhwc: ['N', height, width, channels] };
}

const round = (value: number) => Number(value.toPrecision(6));

/** `soup data DATA`: what an evaluator would see, to check preprocessing before a long run. */
export async function runData(target: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const dataset = await loadDataset(target, pickPreprocessing(options), { onProgress: terminal.progress(), signal });
  terminal.endProgress();
  if (dataset.cache?.state === 'built') {
    const seconds = (performance.now() - started) / 1000;
    terminal.info(`decoded ${dataset.n} images in ${seconds.toFixed(1)} s (${Math.round(dataset.n / seconds)} images/s) into ${dataset.cache.file}`);
  }
  const summary = await summarizeDataset(dataset, signal);
  const shapes = inputShapes(dataset);
  const layout = dataset.preprocessing.layout;
  const document = {
    data: dataset.path,
    name: dataset.name,
    format: dataset.format,
    n: dataset.n,
    classes: dataset.classes ?? summary.labelCounts.map((_, label) => String(label)),
    labelCounts: summary.labelCounts,
    sampleShape: dataset.sampleShape,
    sampleLayout: dataset.sampleLayout,
    layout: layout ?? null,
    inputShapes: shapes ?? null,
    preprocessing: dataset.preprocessing,
    channels: summary.channels.map(({ min, max, mean }) => ({ min: round(min), max: round(max), mean: round(mean) })),
    streamed: dataset.streamed,
    cache: dataset.cache ?? null,
  };
  if (terminal.json) {
    terminal.printJson(document);
    return;
  }
  const { paint } = terminal;
  terminal.print(`${paint.bold(dataset.name)} (${dataset.format}, ${dataset.path})`);
  const classes = document.classes;
  const shown = classes.length > 8 ? `${classes.slice(0, 8).join(', ')}, ...` : classes.join(', ');
  const modelInput =
    shapes === undefined
      ? 'not an image: flat inputs take it reshaped by element count'
      : layout !== undefined
        ? `${layout.toUpperCase()} ${formatInput(shapes[layout])}`
        : `from the model: NCHW ${formatInput(shapes.nchw)} or NHWC ${formatInput(shapes.nhwc)}`;
  const rows: string[][] = [
    ['samples', String(dataset.n)],
    ['classes', `${classes.length} (${shown})`],
    [
      'sample shape',
      `${formatShape(dataset.sampleShape)}${dataset.sampleLayout === 'none' || dataset.sampleShape.length !== 3 ? '' : ` ${dataset.sampleLayout.toUpperCase()}`}`,
    ],
    ['model input', modelInput],
    ['preprocessing', describePreprocessing(dataset.preprocessing)],
    ...summary.channels.map(({ min, max, mean }, c) => [
      summary.channels.length === 1 ? 'values' : `channel ${c}`,
      `${round(min)} to ${round(max)}, mean ${round(mean)}`,
    ]),
    [
      'cache',
      dataset.cache === undefined
        ? 'none (read into memory)'
        : `${formatBytes(dataset.cache.bytes)}, ${dataset.cache.state === 'hit' ? 'up to date' : 'built now'} (${dataset.cache.file})`,
    ],
  ];
  for (const line of table(rows)) terminal.print(`  ${line}`);
}

function formatInput(shape: (number | 'N')[]): string {
  return `[${shape.join(', ')}]`;
}
