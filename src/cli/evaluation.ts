import { z } from 'zod';
import { BACKENDS } from '../eval/backend.js';
import { EXECUTORS } from '../eval/executor.js';
import { preprocessingOptions } from './preprocessing.js';

/** The flags of every command that scores checkpoints (greedy, eval, compare, learned, evolve, interpolate). */
export const evaluationOptions = z
  .object({
    val: z.string().min(1).optional(),
    evalCmd: z.string().min(1).optional(),
    evalTimeout: z.coerce.number().positive().optional(),
    model: z.string().min(1).optional(),
    outputName: z.string().min(1).optional(),
    metric: z.string().min(1).default('accuracy'),
    backend: z.enum(BACKENDS).optional(),
    batchSize: z.coerce.number().int().positive().default(512),
    jobs: z.coerce.number().int().positive().optional(),
    workDir: z.string().min(1).optional(),
    maximize: z.boolean().optional(),
    minimize: z.boolean().optional(),
    executor: z.enum(EXECUTORS).default('local'),
    slurmArgs: z.string().optional(),
    retries: z.coerce.number().int().nonnegative().default(2),
    retryOn: z.string().min(1).optional(),
    /** Read here too: Slurm keeps its journal of submitted jobs beside it. */
    scoreCache: z.string().min(1).optional(),
  })
  .merge(preprocessingOptions);
