import type { CandidateWeights } from '../weights/candidate.js';
import type { Direction } from './metrics.js';

// Candidates are a contract below both sides (weights/candidate.ts): strategies build them, evaluators consume them.
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
  /** Which way the metric points (the built-in metrics' own direction: bounds are only computed for them). */
  direction: Direction;
  best: number;
  acceptTies: boolean;
}

/** What the caller knows about a candidate, for executors that run it elsewhere (job names, finding a job again). */
export interface EvaluationContext {
  /** e.g. "checkpoint-1000 (+2 in soup)". */
  label?: string;
  /** The candidate's identity across runs (the score cache's key): a re-run finds the cluster job an earlier run submitted for it. */
  key?: string;
}

export interface Evaluator {
  /** e.g. "tfjs (wasm)" or "command: python eval.py {ckpt}" */
  readonly description: string;
  /** Metric names this evaluator reports. */
  readonly metrics: readonly string[];
  /** evaluate() may be called again before an earlier call has finished (each call is independent). */
  readonly concurrent?: boolean;
  /** Evaluations a concurrent evaluator takes at once when --jobs does not say (a cluster: all of them). */
  readonly parallelism?: number;
  evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound, context?: EvaluationContext): Promise<Evaluation>;
  /** Raw model outputs, when the evaluator runs the model itself (needed for output ensembles). */
  predict?(candidate: CandidateWeights, signal?: AbortSignal): Promise<Float32Array>;
  /** Metrics of raw outputs, such as an ensemble's mean outputs. */
  scoreOutputs?(outputs: ArrayLike<number>): Record<string, number>;
  dispose(): Promise<void>;
}

/** A loss and its gradients: per float weight of the model (by tensor name), and for the logit scale beta. */
export interface LossGradients {
  loss: number;
  weights: Map<string, Float32Array>;
  beta: number;
}

/** An evaluator that can differentiate its loss (TF.js), as the learned soup needs. */
export interface GradientSource {
  /** Samples in the data set the gradients are taken on. */
  readonly samples: number;
  /** Mean cross-entropy of beta * logits on `samples` (indices into the data set), and its gradients. */
  lossGradients(candidate: CandidateWeights, beta: number, samples: ArrayLike<number>): Promise<LossGradients>;
}

/**
 * An evaluator that remembers scores (the score journal): the worker pool asks it before measuring,
 * and tells it what the workers measured.
 */
export interface ScoreMemory {
  recall(candidate: CandidateWeights, bound?: ScoreBound): Evaluation | undefined;
  record(candidate: CandidateWeights, label: string, evaluation: Evaluation, seconds: number): Promise<void>;
}

export function remembersScores(evaluator: Evaluator): evaluator is Evaluator & ScoreMemory {
  const memory = evaluator as Evaluator & Partial<ScoreMemory>;
  return typeof memory.recall === 'function' && typeof memory.record === 'function';
}
