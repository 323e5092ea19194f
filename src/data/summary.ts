import { throwIfAborted } from '../errors.js';
import type { Dataset } from './dataset.js';
import { imageDims } from './layout.js';

export interface ChannelStats {
  min: number;
  max: number;
  mean: number;
}

export interface DatasetSummary {
  /** Samples per label, by label index. */
  labelCounts: number[];
  /** Statistics of the preprocessed values, per channel (one entry for data that is not an image). */
  channels: ChannelStats[];
}

const SUMMARY_BATCH_BYTES = 32 * 1024 * 1024;

/** What an evaluator would see: label counts and the range of every channel after preprocessing, in one streamed pass. */
export async function summarizeDataset(dataset: Dataset, signal?: AbortSignal): Promise<DatasetSummary> {
  const labelCounts: number[] = [];
  for (const label of dataset.y) labelCounts[label] = (labelCounts[label] ?? 0) + 1;
  const image = imageDims({ shape: dataset.sampleShape, layout: dataset.sampleLayout });
  const channels = image?.channels ?? 1;
  const pixels = image === undefined ? dataset.sampleShape.reduce((a, b) => a * b, 1) : image.height * image.width;
  const per = pixels * channels;
  const stats = Array.from({ length: channels }, () => ({ min: Infinity, max: -Infinity, sum: 0, count: 0 }));
  const channelOf = dataset.sampleLayout === 'chw' ? (i: number) => Math.floor((i % per) / pixels) : (i: number) => i % channels;
  // Batches of at most ~32 MB of float32: 1,024 samples of a 4096 x 4096 crop would be 200 GB.
  const batch = Math.max(1, Math.min(1024, Math.floor(SUMMARY_BATCH_BYTES / (4 * Math.max(1, per)))));
  for await (const { x } of dataset.batches(batch)) {
    throwIfAborted(signal);
    for (let i = 0; i < x.length; i++) {
      const value = x[i]!;
      const s = stats[channels === 1 ? 0 : channelOf(i)]!;
      if (value < s.min) s.min = value;
      if (value > s.max) s.max = value;
      s.sum += value;
      s.count++;
    }
  }
  return {
    labelCounts: Array.from(labelCounts, (count) => count ?? 0),
    channels: stats.map(({ min, max, sum, count }) => ({ min, max, mean: count === 0 ? 0 : sum / count })),
  };
}
