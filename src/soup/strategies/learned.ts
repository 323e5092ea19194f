/**
 * The learned soup (Wortsman et al. 2022, appendix I; the reference code's learned_bylayer.py): the
 * soup is sum_i alpha_i * theta_i per tensor, alpha = softmax of one logit per tensor per ingredient
 * (one per ingredient with byModel), and the model's logits are scaled by a learned beta. Logits and
 * beta are trained with AdamW on the validation set's cross-entropy. No TensorFlow.js here: the loss
 * and its gradient with respect to the mixed weights come from a GradientSource, and the chain rule
 * back to the logits is done on plain arrays.
 */
import { totalmem } from 'node:os';
import { formatBytes } from '../../bytes.js';
import { isFloatDType, numel } from '../../checkpoint/dtype.js';
import type { Checkpoint, TensorInfo } from '../../checkpoint/types.js';
import { InputError, UsageError, throwIfAborted } from '../../errors.js';
import type { CandidateWeights, GradientSource } from '../../eval/evaluator.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { seededRandom, shuffledIndices } from '../../random.js';
import { indexOfNonFinite, type FloatArray } from '../kernel/average.js';

export interface LearnedParams {
  lr: number;
  epochs: number;
  batchSize: number;
  seed: number;
  /** One weight per ingredient for the whole model, instead of one per tensor. */
  byModel: boolean;
  weightDecay: number;
  adamBeta1: number;
  adamBeta2: number;
  adamEps: number;
  /** The logit scale's starting value (1 in the reference code). */
  initialBeta: number;
}

/** The reference code's settings: AdamW, lr 0.05, no weight decay, 5 epochs of batches of 256, beta from 1. */
export const LEARNED_DEFAULTS: LearnedParams = {
  lr: 0.05,
  epochs: 5,
  batchSize: 256,
  seed: 0,
  byModel: false,
  weightDecay: 0,
  adamBeta1: 0.9,
  adamBeta2: 0.999,
  adamEps: 1e-8,
  initialBeta: 1,
};

/** The learned soup's settings out of a larger options object, in LEARNED_DEFAULTS' order (as --json and the recipe list them). */
export function learnedParams(options: LearnedParams): LearnedParams {
  return Object.fromEntries(Object.keys(LEARNED_DEFAULTS).map((key) => [key, options[key as keyof LearnedParams]])) as unknown as LearnedParams;
}

/**
 * Bytes the learned soup holds: every ingredient's float weights (as read: float32, or float64 for
 * F64 tensors), plus three float32 copies of one model (the mixed weights, their gradient, and the
 * model's own weights in TF.js). The data set is not counted: scoring holds it anyway.
 */
export function learnedMemoryBytes(checkpoints: readonly Checkpoint[]): number {
  const floats = checkpoints[0]!.tensors().filter((tensor) => isFloatDType(tensor.dtype));
  const perModel = floats.reduce((sum, tensor) => sum + numel(tensor.shape) * (tensor.dtype === 'F64' ? 8 : 4), 0);
  return perModel * checkpoints.length + 3 * floats.reduce((sum, tensor) => sum + numel(tensor.shape) * 4, 0);
}

/**
 * The learned soup, with or without gradients, holds every ingredient it mixes in memory: refused up
 * front when that is more than --max-memory (default: half the machine's memory). `inputs` are what
 * the user typed, for the greedy soup the hint offers instead.
 */
export function refuseOverMemory(mixed: readonly Checkpoint[], maxMemoryOption: number | undefined, inputs: readonly string[]): number {
  const maxMemory = maxMemoryOption ?? Math.floor(totalmem() / 2);
  const memory = learnedMemoryBytes(mixed);
  if (memory > maxMemory) {
    throw new UsageError(
      `the learned soup holds every ingredient's weights in memory: ${mixed.length} ingredients need ${formatBytes(memory)}, more than --max-memory ${formatBytes(maxMemory)}`,
      { hint: `raise --max-memory, use fewer ingredients, or make a greedy soup, which streams them: soup greedy ${inputs.join(' ')} --val DATA -o OUT` },
    );
  }
  return memory;
}

export function softmax(logits: ArrayLike<number>): number[] {
  const max = Math.max(...Array.from(logits));
  const exps = Array.from(logits, (value) => Math.exp(value - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((value) => value / sum);
}

/** AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias-corrected moments). */
export class AdamW {
  private step = 0;
  private readonly m: Float64Array[];
  private readonly v: Float64Array[];

  constructor(
    private readonly params: readonly Float64Array[],
    private readonly options: { lr: number; beta1: number; beta2: number; eps: number; weightDecay: number },
  ) {
    this.m = params.map((p) => new Float64Array(p.length));
    this.v = params.map((p) => new Float64Array(p.length));
  }

  update(grads: readonly Float64Array[]): void {
    const { lr, beta1, beta2, eps, weightDecay } = this.options;
    this.step++;
    const bias1 = 1 - beta1 ** this.step;
    const bias2 = Math.sqrt(1 - beta2 ** this.step);
    for (const [k, p] of this.params.entries()) {
      const g = grads[k]!;
      const m = this.m[k]!;
      const v = this.v[k]!;
      for (let i = 0; i < p.length; i++) {
        p[i]! *= 1 - lr * weightDecay;
        m[i] = beta1 * m[i]! + (1 - beta1) * g[i]!;
        v[i] = beta2 * v[i]! + (1 - beta2) * g[i]! * g[i]!;
        p[i]! -= ((lr / bias1) * m[i]!) / (Math.sqrt(v[i]!) / bias2 + eps);
      }
    }
  }
}

export interface LearnedGradients {
  loss: number;
  /** dLoss/dlogit, one array per logit group (per tensor, or one with byModel). */
  logits: Float64Array[];
  beta: number;
}

/** The mixing logits and beta over ingredients held in memory, and the soup they make. */
export class LearnedSoup {
  /** Float tensors: the ones mixed. Integer and bool tensors are copied from the first ingredient. */
  readonly tensors: readonly TensorInfo[];
  /** Per logit group, one logit per ingredient. */
  readonly logits: Float64Array[];
  /** Holds beta, so the optimiser updates it with the logits. */
  readonly betaParam = new Float64Array(1);
  private mixed = new Map<string, Float32Array>();

  private constructor(
    private readonly checkpoints: readonly Checkpoint[],
    /** thetas.get(name)[k]: ingredient k's values of the tensor. */
    private readonly thetas: Map<string, FloatArray[]>,
    readonly params: LearnedParams,
  ) {
    this.tensors = checkpoints[0]!.tensors().filter((tensor) => isFloatDType(tensor.dtype));
    const groups = params.byModel ? 1 : this.tensors.length;
    // The reference code starts its raw logits at softmax(ones) = 1/N: equal, so every alpha is 1/N.
    this.logits = Array.from({ length: groups }, () => new Float64Array(checkpoints.length).fill(1 / checkpoints.length));
    this.betaParam[0] = params.initialBeta;
  }

  /** Reads every ingredient's float tensors into memory (check learnedMemoryBytes first). */
  static async load(checkpoints: readonly Checkpoint[], params: LearnedParams, signal?: AbortSignal): Promise<LearnedSoup> {
    const thetas = new Map<string, FloatArray[]>();
    for (const tensor of checkpoints[0]!.tensors()) {
      if (!isFloatDType(tensor.dtype)) continue;
      const values: FloatArray[] = [];
      for (const checkpoint of checkpoints) {
        throwIfAborted(signal);
        const read = await checkpoint.readFloats(tensor.name);
        const at = indexOfNonFinite(read);
        if (at >= 0) {
          throw new InputError(checkpoint.path, `holds ${read[at]} at element ${at}; a learned soup cannot train through it`, {
            tensor: tensor.name,
            hint: 'remove this ingredient',
          });
        }
        values.push(read);
      }
      thetas.set(tensor.name, values);
    }
    return new LearnedSoup(checkpoints, thetas, params);
  }

  get beta(): number {
    return this.betaParam[0]!;
  }

  /** The mixing weights of the tensor at `index` in `tensors`, one per ingredient, summing to 1. */
  alphas(index: number): number[] {
    return softmax(this.logits[this.params.byModel ? 0 : index]!);
  }

  /** {tensor name: {ingredient name: alpha}}, for reports and the recipe. */
  weightsByTensor(): Record<string, Record<string, number>> {
    return Object.fromEntries(
      this.tensors.map((tensor, t) => {
        const alphas = this.alphas(t);
        return [tensor.name, Object.fromEntries(this.checkpoints.map((checkpoint, k) => [checkpoint.name, alphas[k]!]))];
      }),
    );
  }

  /** Per tensor name, the coefficients to write the soup with: alphas for floats, 1 (copy the first) for the rest. */
  coefficients(): (name: string) => readonly number[] {
    const byName = new Map(this.tensors.map((tensor, t) => [tensor.name, this.alphas(t)]));
    const ones = this.checkpoints.map(() => 1);
    return (name) => byName.get(name) ?? ones;
  }

  /**
   * The soup's weights: sum_k alpha_k * theta_k added in float64 in ingredient order and rounded
   * once to float32, exactly as the mixer writes it with the same alphas.
   */
  weights(): CandidateWeights {
    return {
      tensors: this.checkpoints[0]!.tensors(),
      floats: async (name) => this.mix(name),
      bytes: (name) => this.checkpoints[0]!.readBytes(name),
    };
  }

  private mix(name: string): Float32Array {
    const cached = this.mixed.get(name);
    if (cached !== undefined) return cached;
    const index = this.tensors.findIndex((tensor) => tensor.name === name);
    const thetas = this.thetas.get(name);
    if (index < 0 || thetas === undefined) throw new Error(`internal: "${name}" is not a float tensor of the learned soup`);
    const alphas = this.alphas(index);
    const sums = new Float64Array(thetas[0]!.length);
    for (const [k, theta] of thetas.entries()) {
      const alpha = alphas[k]!;
      if (k === 0) for (let i = 0; i < sums.length; i++) sums[i] = alpha * theta[i]!;
      else for (let i = 0; i < sums.length; i++) sums[i]! += alpha * theta[i]!;
    }
    const out = Float32Array.from(sums);
    this.mixed.set(name, out);
    return out;
  }

  /**
   * The loss on `samples` and its gradient with respect to the logits and beta. With W = sum_i a_i
   * theta_i and a = softmax(l): dL/da_i = <dL/dW, theta_i> and dL/dl_j = a_j (dL/da_j - sum_i a_i dL/da_i),
   * summed over the tensors of a group.
   */
  async gradients(source: GradientSource, samples: ArrayLike<number>): Promise<LearnedGradients> {
    const result = await source.lossGradients(this.weights(), this.beta, samples);
    const logits = this.logits.map((group) => new Float64Array(group.length));
    for (const [t, tensor] of this.tensors.entries()) {
      const gradient = result.weights.get(tensor.name);
      if (gradient === undefined) continue;
      const alphas = this.alphas(t);
      const byAlpha = this.thetas.get(tensor.name)!.map((theta) => {
        let dot = 0;
        for (let i = 0; i < theta.length; i++) dot += gradient[i]! * theta[i]!;
        return dot;
      });
      const mean = byAlpha.reduce((sum, value, i) => sum + alphas[i]! * value, 0);
      const target = logits[this.params.byModel ? 0 : t]!;
      for (let j = 0; j < alphas.length; j++) target[j]! += alphas[j]! * (byAlpha[j]! - mean);
    }
    return { loss: result.loss, logits, beta: result.beta };
  }

  /** One optimiser step's worth of new parameters: the cached mixed weights are stale after it. */
  invalidate(): void {
    this.mixed = new Map();
  }
}

export interface LearnedEpoch {
  epoch: number;
  /** Mean training loss over the epoch's batches (weighted by batch size). */
  loss: number;
  beta: number;
}

export interface LearnedOptions {
  signal?: AbortSignal;
  onProgress?: ProgressListener;
}

/**
 * Trains the learned soup: `epochs` passes over the source's samples in seeded random batches,
 * one AdamW step per batch on the logits and beta together, as the reference code does.
 */
export async function trainLearnedSoup(soup: LearnedSoup, source: GradientSource, options: LearnedOptions = {}): Promise<LearnedEpoch[]> {
  const { params } = soup;
  const onProgress = options.onProgress ?? ignoreProgress;
  const optimiser = new AdamW([...soup.logits, soup.betaParam], {
    lr: params.lr,
    beta1: params.adamBeta1,
    beta2: params.adamBeta2,
    eps: params.adamEps,
    weightDecay: params.weightDecay,
  });
  const random = seededRandom(params.seed);
  const n = source.samples;
  const batches = Math.ceil(n / params.batchSize);
  const total = params.epochs * batches;
  const epochs: LearnedEpoch[] = [];
  for (let epoch = 1; epoch <= params.epochs; epoch++) {
    const order = shuffledIndices(n, random);
    let lossSum = 0;
    for (let b = 0; b < batches; b++) {
      throwIfAborted(options.signal);
      onProgress({ kind: 'score', done: (epoch - 1) * batches + b, total, candidate: `training, epoch ${epoch}/${params.epochs}` });
      const samples = order.subarray(b * params.batchSize, (b + 1) * params.batchSize);
      const gradients = await soup.gradients(source, samples);
      lossSum += gradients.loss * samples.length;
      optimiser.update([...gradients.logits, Float64Array.of(gradients.beta)]);
      soup.invalidate();
    }
    epochs.push({ epoch, loss: lossSum / n, beta: soup.beta });
  }
  return epochs;
}
