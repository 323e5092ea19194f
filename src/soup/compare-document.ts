import { z } from 'zod';

/** The --json document of `soup compare`: a contract with CI scripts (fields may be added, never removed). */
export const compareDocumentSchema = z.object({
  metric: z.string(),
  backend: z.string(),
  datasets: z.array(z.string()).min(1),
  rows: z.array(
    z.object({
      name: z.string(),
      kind: z.enum(['ingredient', 'uniform', 'greedy', 'ensemble', 'merge']),
      scores: z.record(z.string(), z.number()),
      chosen: z.array(z.string()).optional(),
      inGreedy: z.boolean().optional(),
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
