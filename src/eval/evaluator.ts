import { encodeFloats, isFloatDType } from '../checkpoint/dtype.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, TensorInfo } from '../checkpoint/types.js';

/**
 * The weights of one candidate soup, handed out a tensor at a time so an evaluator can stream them
 * into a model (or a temporary checkpoint) without a second full copy in memory.
 */
export interface CandidateWeights {
  /** The tensors, in the reference ingredient's order. */
  readonly tensors: readonly TensorInfo[];
  /** Values of a float tensor. */
  floats(name: string): Promise<Float32Array>;
  /** Stored bytes of an integer or bool tensor (copied, never averaged). */
  bytes(name: string): Promise<Uint8Array>;
  /** What the candidate is made of, when it is a weighted mean of ingredients: the key of the score cache. */
  readonly parts?: readonly { checkpoint: Checkpoint; weight: number }[];
}

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
  /** evaluate() may be called again before an earlier call has finished (each call is independent). */
  readonly concurrent?: boolean;
  evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound): Promise<Evaluation>;
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

/** Feeds a checkpoint writer from a candidate: floats encoded in each output tensor's dtype, the rest copied. */
export function candidateProducer(candidate: CandidateWeights): TensorProducer {
  return async function* (tensor) {
    yield isFloatDType(tensor.dtype) ? encodeFloats(await candidate.floats(tensor.name), tensor.dtype) : await candidate.bytes(tensor.name);
  };
}
