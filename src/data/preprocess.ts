import { z } from 'zod';
import { UsageError } from '../errors.js';

export const INTERPOLATIONS = ['bilinear', 'bicubic'] as const;
export const CHANNEL_ORDERS = ['rgb', 'bgr', 'grey'] as const;
export const LAYOUTS = ['nchw', 'nhwc'] as const;
export type Interpolation = (typeof INTERPOLATIONS)[number];
export type ChannelOrder = (typeof CHANNEL_ORDERS)[number];
export type Layout = (typeof LAYOUTS)[number];

/**
 * What is done to samples before a model sees them, in this order: (images only) channels, resize
 * of the shorter side, center crop; then, for every format, `x * scale + offset`, then
 * `(x - mean[c]) / std[c]`; `layout` says which input layout to produce when the model's shape leaves
 * it open, and must agree with the model's when it does not.
 */
export interface Preprocessing {
  preprocess?: PresetName | undefined;
  resize?: number | undefined;
  interpolation?: Interpolation | undefined;
  crop?: number | undefined;
  scale?: number | undefined;
  offset?: number | undefined;
  mean?: number[] | undefined;
  std?: number[] | undefined;
  channels?: ChannelOrder | undefined;
  layout?: Layout | undefined;
}

/** The preprocessing fields of a larger options object (the flags of every command that reads evaluation data). */
export function pickPreprocessing(options: Preprocessing): Preprocessing {
  const { preprocess, resize, interpolation, crop, scale, offset, mean, std, channels, layout } = options;
  return { preprocess, resize, interpolation, crop, scale, offset, mean, std, channels, layout };
}

/** The presets' numbers are torchvision's ImageNet transforms and OpenAI CLIP's image transform. */
export const PRESETS = {
  imagenet: { resize: 256, interpolation: 'bilinear', crop: 224, scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channels: 'rgb' },
  clip: {
    resize: 224,
    interpolation: 'bicubic',
    crop: 224,
    scale: 1 / 255,
    mean: [0.48145466, 0.4578275, 0.40821073],
    std: [0.26862954, 0.26130258, 0.27577711],
    channels: 'rgb',
  },
} as const satisfies Record<string, Preprocessing>;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/**
 * Largest resize or crop: model inputs are at most a few thousand pixels wide, and every image is
 * decoded at this size (4096 x 4096 RGB is 50 MB, times the decoders running at once).
 */
export const MAX_IMAGE_SIDE = 4096;
const positiveSize = z.number().int().positive().max(MAX_IMAGE_SIDE);
const perChannel = z.array(z.number().finite()).min(1).max(4);

/** The keys a dataset.json may hold (and `description`, for people). */
export const preprocessingSchema = z.strictObject({
  preprocess: z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]).optional(),
  resize: positiveSize.optional(),
  interpolation: z.enum(INTERPOLATIONS).optional(),
  crop: positiveSize.optional(),
  scale: z.number().finite().optional(),
  offset: z.number().finite().optional(),
  mean: perChannel.optional(),
  std: perChannel.refine((values) => values.every((v) => v > 0), 'every std must be above 0').optional(),
  channels: z.enum(CHANNEL_ORDERS).optional(),
  layout: z.enum(LAYOUTS).optional(),
  description: z.string().optional(),
});

const definedOnly = (steps: Preprocessing): Preprocessing =>
  Object.fromEntries(Object.entries(steps).filter(([key, value]) => value !== undefined && key !== 'description')) as Preprocessing;

/**
 * The steps in force: dataset.json's preset, then its own keys, then the --preprocess preset, then
 * single-key flags; each layer overrides only the keys it sets.
 */
export function resolvePreprocessing(stored: Preprocessing, flags: Preprocessing): Preprocessing {
  const layers = [stored.preprocess && PRESETS[stored.preprocess], definedOnly(stored), flags.preprocess && PRESETS[flags.preprocess], definedOnly(flags)];
  const steps: Preprocessing = {};
  for (const layer of layers) if (layer) Object.assign(steps, layer);
  delete steps.preprocess;
  const preset = flags.preprocess ?? stored.preprocess;
  return preset === undefined ? steps : { preprocess: preset, ...steps };
}

/** Parses a --mean or --std value: numbers separated by commas. */
export function parseChannelValues(text: string, flag: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (values.length === 0 || values.length > 4 || values.some((v) => !Number.isFinite(v)) || text.trim() === '') {
    throw new UsageError(`${flag}: "${text}" is not 1 to 4 numbers separated by commas`, { hint: `e.g. ${flag} 0.485,0.456,0.406` });
  }
  return values;
}

/** Per-channel affine maps, x -> x * a[c] + b[c], equal to ((x * scale + offset) - mean[c]) / std[c]. */
export interface ChannelAffine {
  /** True when every channel's map is the identity: values pass unchanged. */
  identity: boolean;
  apply(value: number, channel: number): number;
}

/**
 * The value steps for `channels` channels. Computed in double precision and rounded to float32 once,
 * as numpy does for `((x * scale + offset) - mean) / std` on Python floats, so data at the model's size
 * comes out bit-exact.
 */
export function channelAffine(steps: Preprocessing, channels: number, source: string): ChannelAffine {
  const scale = steps.scale ?? 1;
  const offset = steps.offset ?? 0;
  const mean = expand(steps.mean ?? [0], channels, 'mean', source);
  const std = expand(steps.std ?? [1], channels, 'std', source);
  const identity = scale === 1 && offset === 0 && mean.every((m) => m === 0) && std.every((s) => s === 1);
  return {
    identity,
    apply: (value, channel) => (value * scale + offset - mean[channel]!) / std[channel]!,
  };
}

function expand(values: number[], channels: number, key: string, source: string): number[] {
  if (values.length === channels) return values;
  if (values.length === 1) return new Array<number>(channels).fill(values[0]!);
  throw new UsageError(`${source}: ${key} has ${values.length} values, but the samples have ${channels} channel${channels === 1 ? '' : 's'}`, {
    hint: channels === 1 ? 'give one value, or ask for colour images with --channels rgb' : `give ${channels} values, or one for every channel`,
  });
}

/** Whether steps change an image's size, so images of any size are accepted. */
export function resamples(steps: Preprocessing): boolean {
  return steps.resize !== undefined || steps.crop !== undefined;
}

/** A short description of the steps for reports, e.g. "resize 256 (bilinear), crop 224, scale 0.00392". */
export function describePreprocessing(steps: Preprocessing): string {
  const parts: string[] = [];
  if (steps.preprocess !== undefined) parts.push(`preset ${steps.preprocess}`);
  if (steps.channels !== undefined) parts.push(steps.channels);
  if (steps.resize !== undefined) parts.push(`resize ${steps.resize} (${steps.interpolation ?? 'bilinear'})`);
  if (steps.crop !== undefined) parts.push(`crop ${steps.crop}`);
  if (steps.scale !== undefined && steps.scale !== 1) parts.push(`scale ${Number(steps.scale.toPrecision(4))}`);
  if (steps.offset !== undefined && steps.offset !== 0) parts.push(`offset ${steps.offset}`);
  if (steps.mean !== undefined) parts.push(`mean [${steps.mean.join(', ')}]`);
  if (steps.std !== undefined) parts.push(`std [${steps.std.join(', ')}]`);
  if (steps.layout !== undefined) parts.push(steps.layout.toUpperCase());
  return parts.length === 0 ? 'none (values as stored)' : parts.join(', ');
}

/** The size torchvision's Resize(size) gives: the shorter side becomes `size`, the longer one keeps the aspect (truncated). */
export function resizedSize(width: number, height: number, size: number): { width: number; height: number } {
  if (width <= height) return { width: size, height: Math.trunc((size * height) / width) };
  return { width: Math.trunc((size * width) / height), height: size };
}

/** Python's round(): halves go to the even neighbour, as torchvision's CenterCrop rounds its offsets. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

/** Top-left corner of torchvision's CenterCrop (negative where the image is smaller and gets zero padding). */
export function cropOrigin(width: number, height: number, size: number): { left: number; top: number } {
  // A side shorter than the crop is padded first, with the odd pixel of padding after the image.
  const origin = (side: number) => (side < size ? -Math.floor((size - side) / 2) : roundHalfEven((side - size) / 2));
  return { left: origin(width), top: origin(height) };
}
