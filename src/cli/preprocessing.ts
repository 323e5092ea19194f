import { z } from 'zod';
import { CHANNEL_ORDERS, INTERPOLATIONS, LAYOUTS, MAX_IMAGE_SIDE, PRESET_NAMES, parseChannelValues, type PresetName } from '../data/preprocess.js';

const channelValues = (flag: string) =>
  z
    .string()
    .transform((text) => parseChannelValues(text, flag))
    .optional();

/** A number, or a fraction such as 1/255 (how a pixel scale is usually written). */
const numberOrFraction = z
  .union([z.number(), z.string()])
  .transform((value, context) => {
    const text = String(value).trim();
    const parts = text.split('/').map((part) => (part.trim() === '' ? Number.NaN : Number(part)));
    const number = parts.length === 1 ? parts[0]! : parts.length === 2 && parts[1] !== 0 ? parts[0]! / parts[1]! : Number.NaN;
    if (!Number.isFinite(number)) {
      context.addIssue({ code: 'custom', message: `"${text}" is not a number or a fraction such as 1/255` });
      return z.NEVER;
    }
    return number;
  })
  .optional();

/** The preprocessing flags of every command that reads evaluation data (greedy, eval, compare, data). */
export const preprocessingOptions = z.object({
  preprocess: z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]).optional(),
  resize: z.coerce.number().int().positive().max(MAX_IMAGE_SIDE).optional(),
  interpolation: z.enum(INTERPOLATIONS).optional(),
  crop: z.coerce.number().int().positive().max(MAX_IMAGE_SIDE).optional(),
  scale: numberOrFraction,
  offset: numberOrFraction,
  mean: channelValues('--mean'),
  std: channelValues('--std'),
  channels: z.enum(CHANNEL_ORDERS).optional(),
  layout: z.enum(LAYOUTS).optional(),
});
