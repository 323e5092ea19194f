import { z } from 'zod';
import { CHANNEL_ORDERS, INTERPOLATIONS, LAYOUTS, MAX_IMAGE_SIDE, PRESET_NAMES, parseChannelValues, type PresetName, type Preprocessing } from '../data/preprocess.js';

const channelValues = (flag: string) =>
  z
    .string()
    .transform((text) => parseChannelValues(text, flag))
    .optional();

/** The preprocessing flags of every command that reads evaluation data (greedy, eval, compare, data). */
export const preprocessingOptions = z.object({
  preprocess: z.enum(PRESET_NAMES as [PresetName, ...PresetName[]]).optional(),
  resize: z.coerce.number().int().positive().max(MAX_IMAGE_SIDE).optional(),
  interpolation: z.enum(INTERPOLATIONS).optional(),
  crop: z.coerce.number().int().positive().max(MAX_IMAGE_SIDE).optional(),
  scale: z.coerce.number().finite().optional(),
  offset: z.coerce.number().finite().optional(),
  mean: channelValues('--mean'),
  std: channelValues('--std'),
  channels: z.enum(CHANNEL_ORDERS).optional(),
  layout: z.enum(LAYOUTS).optional(),
});

/** The steps the flags set; dataset.json supplies the rest (see resolvePreprocessing). */
export function preprocessingFlags(options: z.output<typeof preprocessingOptions>): Preprocessing {
  const { preprocess, resize, interpolation, crop, scale, offset, mean, std, channels, layout } = options;
  return { preprocess, resize, interpolation, crop, scale, offset, mean, std, channels, layout };
}
