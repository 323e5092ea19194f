import { UsageError } from '../errors.js';
import type { Layout } from './preprocess.js';

/** How one stored sample's values are ordered: height-width-channels (image files), channels first, or not an image. */
export type SampleLayout = 'hwc' | 'chw' | 'none';

export interface SampleDescription {
  /** One sample's shape as stored, e.g. [224, 224, 3] or [28, 28]. */
  shape: number[];
  layout: SampleLayout;
}

/** How stored samples become a model's input. */
export interface InputFit {
  /** The input's shape without the batch dimension, every dimension known. */
  shape: number[];
  /** The model's input layout: NCHW, NHWC, a flat vector, or some other shape with the samples' element order. */
  layout: Layout | 'flat' | 'as stored';
  /** Whether values are reordered between channel-last and channel-first on the way. */
  transpose: 'none' | 'hwc-to-chw' | 'chw-to-hwc';
}

const CHANNEL_COUNTS = new Set([1, 3]);

/** [height, width, channels] of an image-like sample, or undefined when the sample is not one. */
export function imageDims(sample: SampleDescription): { height: number; width: number; channels: number } | undefined {
  const { shape, layout } = sample;
  if (shape.length === 2 && layout !== 'none') return { height: shape[0]!, width: shape[1]!, channels: 1 };
  if (shape.length !== 3) return undefined;
  if (layout === 'hwc') return { height: shape[0]!, width: shape[1]!, channels: shape[2]! };
  if (layout === 'chw') return { height: shape[1]!, width: shape[2]!, channels: shape[0]! };
  return undefined;
}

/**
 * A stored array's layout guessed from its shape: [H, W, 1 or 3] is channel-last, [1 or 3, H, W]
 * channel-first, [H, W] a grey image; anything else (or an ambiguous [3, H, 3]) is not treated as an image.
 */
export function guessSampleLayout(shape: number[]): SampleLayout {
  if (shape.length === 2) return 'hwc';
  if (shape.length !== 3) return 'none';
  const last = CHANNEL_COUNTS.has(shape[2]!);
  const first = CHANNEL_COUNTS.has(shape[0]!);
  if (last && !first) return 'hwc';
  if (first && !last) return 'chw';
  return 'none';
}

const formatShape = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const formatModelShape = (shape: readonly number[]) => `[N, ${shape.map((dim) => (dim < 0 ? '?' : String(dim))).join(', ')}]`;
const count = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The layout a 4-D model input [N, ...dims] implies: [N, 3, H, W] is NCHW, [N, H, W, 3] NHWC. */
export function modelLayout(dims: readonly number[], wanted?: Layout): Layout | undefined {
  if (dims.length !== 3) return undefined;
  const first = CHANNEL_COUNTS.has(dims[0]!);
  const last = CHANNEL_COUNTS.has(dims[2]!);
  if (first && !last) return 'nchw';
  if (last && !first) return 'nhwc';
  return wanted;
}

/**
 * Says how samples map onto a model input of shape [N, ...modelDims] (unknown dimensions as -1):
 * image samples go into a 4-D input as NCHW or NHWC, transposed when their stored layout differs;
 * only a flat input ([N, 784]) takes samples reshaped by element count; otherwise the shapes must be
 * equal up to dimensions of size 1. Anything else throws an error naming the shapes that disagree,
 * because reshaping pixels across channels would silently feed the model noise.
 */
export function fitToInput(sample: SampleDescription, modelDims: readonly number[], wanted?: Layout): InputFit {
  const image = imageDims(sample);
  const described = `${formatShape(sample.shape)}${sample.layout !== 'none' && sample.shape.length === 3 ? ` (${sample.layout.toUpperCase()})` : ''}`;
  const refuse = (why: string, hint?: string): never => {
    throw new UsageError(`samples have shape ${described}, the model expects ${formatModelShape(modelDims)}: ${why}`, hint === undefined ? {} : { hint });
  };
  if (modelDims.length === 3) {
    const layout = modelLayout(modelDims, wanted);
    if (layout === undefined) {
      return refuse('its layout is ambiguous', 'say which with --layout nchw or --layout nhwc');
    }
    if (wanted !== undefined && wanted !== layout) refuse(`the preprocessing asks for ${wanted.toUpperCase()}, the model's input is ${layout.toUpperCase()}`);
    if (image === undefined) {
      return refuse('the samples are not images with a known channel axis', 'store x as [n, H, W, C] or [n, C, H, W] with 1 or 3 channels');
    }
    const [c, h, w] = layout === 'nchw' ? modelDims : [modelDims[2]!, modelDims[0]!, modelDims[1]!];
    const disagree: string[] = [];
    if (c! >= 0 && c !== image.channels) disagree.push(`${image.channels} channels vs ${c}`);
    if ((h! >= 0 && h !== image.height) || (w! >= 0 && w !== image.width))
      disagree.push(`${image.height}x${image.width} pixels vs ${h! < 0 ? '?' : h}x${w! < 0 ? '?' : w}`);
    if (disagree.length > 0) {
      refuse(
        disagree.join(', '),
        c !== image.channels ? 'convert with --channels rgb or --channels grey' : 'resize with --resize and --crop (or --preprocess imagenet)',
      );
    }
    const shape = layout === 'nchw' ? [image.channels, image.height, image.width] : [image.height, image.width, image.channels];
    const transpose =
      image.channels === 1
        ? 'none'
        : layout === 'nchw' && sample.layout === 'hwc'
          ? 'hwc-to-chw'
          : layout === 'nhwc' && sample.layout === 'chw'
            ? 'chw-to-hwc'
            : 'none';
    return { shape, layout, transpose };
  }
  const size = count(sample.shape);
  if (modelDims.length === 1) {
    if (modelDims[0]! >= 0 && modelDims[0] !== size) refuse(`${size} values per sample vs ${modelDims[0]}`);
    // A flat input takes the values in the order asked for (NCHW for a network trained on flattened CHW tensors).
    const transpose =
      image !== undefined && image.channels > 1 && wanted === 'nchw' && sample.layout === 'hwc'
        ? 'hwc-to-chw'
        : wanted === 'nhwc' && sample.layout === 'chw' && image !== undefined && image.channels > 1
          ? 'chw-to-hwc'
          : 'none';
    return { shape: [size], layout: 'flat', transpose };
  }
  const withoutUnits = (shape: readonly number[]) => shape.filter((dim) => dim !== 1);
  const model = withoutUnits(modelDims);
  const stored = withoutUnits(sample.shape);
  const same = model.length === stored.length && model.every((dim, i) => dim < 0 || dim === stored[i]);
  if (!same) refuse('only a flat input [N, K] takes samples reshaped by element count');
  let next = 0;
  const shape = modelDims.map((dim) => (dim === 1 ? 1 : stored[next++]!));
  return { shape, layout: 'as stored', transpose: 'none' };
}

/**
 * Copies `count` samples from `source` (stored layout) into `target`, reordered as `fit` says and passed
 * through `value(x, channel)`. The one loop every data source's batches go through.
 */
export function arrangeSamples(
  source: ArrayLike<number>,
  sourceStart: number,
  count: number,
  sample: SampleDescription,
  fit: InputFit,
  value: (x: number, channel: number) => number,
  target: Float32Array,
): void {
  const image = imageDims(sample);
  const size = count * fit.shape.reduce((a, b) => a * b, 1);
  if (image === undefined || (image.channels === 1 && fit.transpose === 'none')) {
    for (let i = 0; i < size; i++) target[i] = value(source[sourceStart + i]!, 0);
    return;
  }
  const { height, width, channels } = image;
  const pixels = height * width;
  const per = pixels * channels;
  for (let s = 0; s < count; s++) {
    const base = sourceStart + s * per;
    const out = s * per;
    if (fit.transpose === 'hwc-to-chw') {
      for (let c = 0; c < channels; c++) for (let p = 0; p < pixels; p++) target[out + c * pixels + p] = value(source[base + p * channels + c]!, c);
    } else if (fit.transpose === 'chw-to-hwc') {
      for (let p = 0; p < pixels; p++) for (let c = 0; c < channels; c++) target[out + p * channels + c] = value(source[base + c * pixels + p]!, c);
    } else if (sample.layout === 'chw') {
      for (let c = 0; c < channels; c++) for (let p = 0; p < pixels; p++) target[out + c * pixels + p] = value(source[base + c * pixels + p]!, c);
    } else {
      for (let i = 0; i < per; i++) target[out + i] = value(source[base + i]!, i % channels);
    }
  }
}
