import type { CandidateWeights } from '../soup/candidate.js';

// Candidates live with the code that builds them (soup/candidate.ts); evaluators only consume them.
export type { CandidateWeights };

export interface Evaluation {
  /** Every metric the evaluator measured; the greedy loop reads the one asked for. */
  metrics: Record<string, number>;
  /** Samples in the data set (undefined when an external command scored them). */
  n?: number;
  /** Samples actually run through the model: fewer than n when scoring stopped early. */
  scored?: number;
  /** Scoring stopped early: the candidate could not beat the bound; metrics[bound.metric] is the best it could still have reached. */
  pruned?: boolean;
}

/** A score to beat: scoring may stop as soon as the candidate provably cannot (exact early stopping). */
export interface ScoreBound {
  metric: string;
  best: number;
  acceptTies: boolean;
}

export interface Evaluator {
  /** e.g. "tfjs (wasm)" or "command: python eval.py {ckpt}" */
  readonly description: string;
  /** Metric names this evaluator reports. */
  readonly metrics: readonly string[];
  evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound): Promise<Evaluation>;
  /** Raw model outputs, when the evaluator runs the model itself (needed for output ensembles). */
  predict?(candidate: CandidateWeights, signal?: AbortSignal): Promise<Float32Array>;
  /** Metrics of raw outputs, such as an ensemble's mean outputs. */
  scoreOutputs?(outputs: ArrayLike<number>): Record<string, number>;
  dispose(): Promise<void>;
}
