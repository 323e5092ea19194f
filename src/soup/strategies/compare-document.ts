import { z } from 'zod';

/** The --json document of `soup compare`: a contract with CI scripts (fields may be added, never removed). */
/** A score; NaN and infinities (a diverged run's loss) are null in JSON, and read back as NaN. */
const score = z.union([z.number(), z.null().transform(() => NaN)]);

export const compareDocumentSchema = z.object({
  metric: z.string(),
  /** Absent in documents written before soup recorded it. */
  direction: z.enum(['maximize', 'minimize']).optional(),
  backend: z.string(),
  datasets: z.array(z.string()).min(1),
  rows: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['ingredient', 'uniform', 'greedy', 'ensemble', 'merge']),
      scores: z.record(z.string(), score),
      chosen: z.array(z.string()).optional(),
      inGreedy: z.boolean().optional(),
      diverged: z.object({ tensor: z.string(), element: z.number(), value: z.string() }).optional(),
      leftOut: z.array(z.string()).optional(),
    }),
  ),
  notes: z.array(z.string()).optional(),
  gates: z.array(z.object({ gate: z.string(), passed: z.boolean(), detail: z.string() })).optional(),
  saved: z.record(z.string(), z.string()).optional(),
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs: z
    .array(
      z.object({
        id: z.string(),
        label: z.string(),
        state: z.string(),
        queuedSeconds: z.number().nullable(),
        runningSeconds: z.number().nullable(),
        output: z.string(),
        attempt: z.number(),
        reattached: z.literal(true).optional(),
      }),
    )
    .optional(),
});

export type CompareDocument = z.infer<typeof compareDocumentSchema>;
