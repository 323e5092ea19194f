/** soup eval: one checkpoint scored as it is, with the evaluator the options ask for. */
import type { Checkpoint } from '../../checkpoint/types.js';
import { createEvaluator, type EvaluationOptions } from '../../eval/create.js';
import type { Direction } from '../../eval/metrics.js';
import type { SlurmJobRecord } from '../../eval/slurm.js';
import type { ProgressListener } from '../../progress.js';
import { ingredientWeights } from '../../weights/candidate.js';
import { scanDiverged, type Divergence } from '../diverged.js';

/** What `soup eval` reports (--json). */
export interface EvalDocument {
  checkpoint: string;
  /** Samples in the data set; null when an external command scored them. */
  n: number | null;
  backend: string;
  metrics: Record<string, number>;
  metric: string;
  direction: Direction;
  /** Where the weights first hold NaN or an infinity. */
  diverged?: Divergence;
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs?: SlurmJobRecord[];
}

export interface CheckpointScore {
  document: EvalDocument;
  /** How it was scored, e.g. "TF.js (cpu)", and on what data (none for --eval-cmd). */
  evaluator: string;
  data: { name: string; n: number } | undefined;
}

export interface ScoreCheckpointOptions {
  /** Score without looking for NaN first. */
  allowNonFinite: boolean;
  onProgress?: ProgressListener;
  /** Things the user should know: tensors the model does not use, diverged weights. */
  warn: (message: string) => void;
  signal?: AbortSignal;
}

export async function scoreCheckpoint(checkpoint: Checkpoint, evaluation: EvaluationOptions, options: ScoreCheckpointOptions): Promise<CheckpointScore> {
  const { evaluator, dataset, backend, warnings, direction, slurm } = await createEvaluator(evaluation, checkpoint, undefined, options.onProgress);
  for (const warning of warnings ?? []) options.warn(warning);
  let scored;
  let divergence: Divergence | undefined;
  try {
    divergence = (await scanDiverged([checkpoint], { allowNonFinite: options.allowNonFinite }, options.warn, options.signal)).get(checkpoint);
    // A diverged checkpoint is scored as it is: its NaN outputs count as wrong, its loss is NaN.
    scored = await evaluator.evaluate(ingredientWeights(checkpoint, true), options.signal);
  } finally {
    await evaluator.dispose();
  }
  return {
    document: {
      checkpoint: checkpoint.path,
      n: scored.n ?? null,
      backend,
      metrics: scored.metrics,
      metric: evaluation.metric,
      direction,
      ...(divergence === undefined ? {} : { diverged: divergence }),
      ...(slurm === undefined ? {} : { slurmJobs: slurm.records }),
    },
    evaluator: evaluator.description,
    data: dataset === undefined ? undefined : { name: dataset.name, n: dataset.n },
  };
}
