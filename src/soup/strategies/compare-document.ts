import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { InputError, describeFsError } from '../../errors.js';

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

/** An earlier `soup compare --json` document (--baseline), checked against the schema. */
export async function readCompareDocument(file: string): Promise<CompareDocument> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new InputError(file, `cannot read the baseline: ${describeFsError(error)}`, { cause: error });
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(file, `the baseline is not JSON (${(error as Error).message}); it should be the output of soup compare --json`);
  }
  const parsed = compareDocumentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(file, `not a soup compare --json document: ${issue.path.join('.') || 'top level'}: ${issue.message}`);
  }
  return parsed.data;
}
