/** The flags of `soup learned`, both paths: the gradient path's AdamW settings and the search's CMA-ES ones. */
import { z } from 'zod';
import { LEARNED_DEFAULTS } from '../soup/strategies/learned.js';
import { evaluationOptions } from './evaluation.js';
import { commonOptions, soupOutputOptions } from './options.js';
import { searchFlags } from './search-common.js';

/** "8G", "512MB", "1.5GiB", "1000000": a size in bytes (k, M, G, T as powers of 1024). */
const sizeOption = z.string().transform((text, context): number => {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (match === null) {
    context.addIssue({ code: 'custom', message: `"${text}" is not a size (e.g. 8G, 512M or a number of bytes)` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * 1024 ** ' kmgt'.indexOf(match[2]!.toLowerCase() || ' '));
});

const positive = z.coerce.number().finite().positive();

export const learnedSchema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend({
    batchSize: z.coerce.number().int().positive().default(LEARNED_DEFAULTS.batchSize),
    lr: positive.default(LEARNED_DEFAULTS.lr),
    epochs: z.coerce.number().int().min(0).default(LEARNED_DEFAULTS.epochs),
    seed: searchFlags.seed,
    byModel: z.boolean().default(LEARNED_DEFAULTS.byModel),
    weightDecay: z.coerce.number().finite().min(0).default(LEARNED_DEFAULTS.weightDecay),
    adamBeta1: z.coerce.number().min(0).lt(1).default(LEARNED_DEFAULTS.adamBeta1),
    adamBeta2: z.coerce.number().min(0).lt(1).default(LEARNED_DEFAULTS.adamBeta2),
    adamEps: positive.default(LEARNED_DEFAULTS.adamEps),
    initialBeta: z.coerce.number().finite().default(LEARNED_DEFAULTS.initialBeta),
    maxMemory: sizeOption.optional(),
    // The gradient-free search (ONNX Runtime, --eval-cmd).
    by: z.enum(['ingredient', 'block']).optional(),
    blocks: z.coerce.number().int().positive().optional(),
    evaluations: searchFlags.evaluations,
    population: searchFlags.population,
    sigma: positive.default(1),
    objective: searchFlags.objective,
    scoreCache: searchFlags.scoreCache,
    layerPattern: searchFlags.layerPattern,
  });

export type LearnedOptions = z.output<typeof learnedSchema>;

/** Flags that only the gradient-free search reads. */
const SEARCH_ONLY = ['by', 'blocks', 'population', 'objective', 'scoreCache'] as const;

/** The first flag of the gradient-free search that was given, as typed ("--score-cache"): refused on the gradient path. */
export function searchOnlyFlag(options: LearnedOptions): string | undefined {
  const given = SEARCH_ONLY.find((key) => options[key] !== undefined);
  return given === undefined ? undefined : `--${given.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
