/** soup data: what an evaluator would see of a data set, to check preprocessing before a long run. */
import type { Dataset } from './dataset.js';
import { imageDims, type SampleLayout } from './layout.js';
import type { Layout, Preprocessing } from './preprocess.js';
import { summarizeDataset } from './summary.js';

type InputShape = (number | 'N')[];

/** What `soup data` reports (--json). */
export interface DataDocument {
  data: string;
  name: string;
  format: Dataset['format'];
  n: number;
  classes: string[];
  labelCounts: number[];
  sampleShape: number[];
  sampleLayout: SampleLayout;
  layout: Layout | null;
  /** The input shapes an image data set gives in each layout; null for data that is not an image. */
  inputShapes: { nchw: InputShape; nhwc: InputShape } | null;
  preprocessing: Preprocessing;
  /** Each channel's values after preprocessing, to six significant digits. */
  channels: { min: number; max: number; mean: number }[];
  streamed: boolean;
  cache: NonNullable<Dataset['cache']> | null;
}

/** The loaded data set's classes, shapes and value ranges (read in full once). */
export async function overviewDataset(dataset: Dataset, signal?: AbortSignal): Promise<DataDocument> {
  const summary = await summarizeDataset(dataset, signal);
  return {
    data: dataset.path,
    name: dataset.name,
    format: dataset.format,
    n: dataset.n,
    classes: dataset.classes ?? summary.labelCounts.map((_, label) => String(label)),
    labelCounts: summary.labelCounts,
    sampleShape: dataset.sampleShape,
    sampleLayout: dataset.sampleLayout,
    layout: dataset.preprocessing.layout ?? null,
    inputShapes: inputShapes(dataset) ?? null,
    preprocessing: dataset.preprocessing,
    channels: summary.channels.map(({ min, max, mean }) => ({ min: round(min), max: round(max), mean: round(mean) })),
    streamed: dataset.streamed,
    cache: dataset.cache ?? null,
  };
}

const round = (value: number) => Number(value.toPrecision(6));

/** The input shapes an image data set gives in each layout, [N, ...]; none for data that is not an image. */
function inputShapes(dataset: Dataset): { nchw: InputShape; nhwc: InputShape } | undefined {
  const image = imageDims({ shape: dataset.sampleShape, layout: dataset.sampleLayout });
  if (image === undefined) return undefined;
  const { height, width, channels } = image;
  return { nchw: ['N', channels, height, width], nhwc: ['N', height, width, channels] };
}
