import type { Dataset } from '../data/dataset.js';
import type { DataDocument } from '../data/overview.js';
import { describePreprocessing } from '../data/preprocess.js';
import { formatBytes, formatShape, table } from './format.js';
import type { Terminal } from './terminal.js';

/** How fast an image folder was decoded into its cache, when it was just built. */
export function reportDecoding(terminal: Terminal, dataset: Dataset, seconds: number): void {
  if (dataset.cache?.state !== 'built') return;
  terminal.info(`decoded ${dataset.n} images in ${seconds.toFixed(1)} s (${Math.round(dataset.n / seconds)} images/s) into ${dataset.cache.file}`);
}

/** What `soup data` found: the --json document, or a table of what a model would be fed. */
export function renderData(terminal: Terminal, doc: DataDocument): void {
  if (terminal.json) {
    terminal.printJson(doc);
    return;
  }
  const { paint } = terminal;
  terminal.print(`${paint.bold(doc.name)} (${doc.format}, ${doc.data})`);
  const classes = doc.classes;
  const shown = classes.length > 8 ? `${classes.slice(0, 8).join(', ')}, ...` : classes.join(', ');
  const shapes = doc.inputShapes;
  const modelInput =
    shapes === null
      ? 'not an image: flat inputs take it reshaped by element count'
      : doc.layout !== null
        ? `${doc.layout.toUpperCase()} ${formatInput(shapes[doc.layout])}`
        : `from the model: NCHW ${formatInput(shapes.nchw)} or NHWC ${formatInput(shapes.nhwc)}`;
  const rows: string[][] = [
    ['samples', String(doc.n)],
    ['classes', `${classes.length} (${shown})`],
    [
      'sample shape',
      `${formatShape(doc.sampleShape)}${doc.sampleLayout === 'none' || doc.sampleShape.length !== 3 ? '' : ` ${doc.sampleLayout.toUpperCase()}`}`,
    ],
    ['model input', modelInput],
    ['preprocessing', describePreprocessing(doc.preprocessing)],
    ...doc.channels.map(({ min, max, mean }, c) => [doc.channels.length === 1 ? 'values' : `channel ${c}`, `${min} to ${max}, mean ${mean}`]),
    [
      'cache',
      doc.cache === null
        ? 'none (read into memory)'
        : `${formatBytes(doc.cache.bytes)}, ${doc.cache.state === 'hit' ? 'up to date' : 'built now'} (${doc.cache.file})`,
    ],
  ];
  for (const line of table(rows)) terminal.print(`  ${line}`);
}

function formatInput(shape: (number | 'N')[]): string {
  return `[${shape.join(', ')}]`;
}
