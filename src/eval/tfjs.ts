/**
 * The only module that loads TensorFlow.js. It builds a LayersModel once from a topology, then
 * scores candidates by swapping their weights into it; commands that never evaluate never load it.
 */
import type * as Core from '@tensorflow/tfjs-core';
import type * as Layers from '@tensorflow/tfjs-layers';
import { InputError, UsageError, throwIfAborted } from '../errors.js';
import { PRELOAD_BYTES, type Dataset, type InputFit } from '../data/dataset.js';
import { registerChainedOps } from './chained-ops.js';
import { backendOrder, tfjsBackendName, type BackendName } from './backend.js';
import type { CandidateWeights } from '../weights/candidate.js';
import type { Evaluation, Evaluator, GradientSource, LossGradients, ScoreBound } from './evaluator.js';
import { METRIC_NAMES, MetricAccumulator, PROBABILITY_EPSILON, improves, type MetricName, type Metrics } from './metrics.js';

/**
 * The parts of TF.js used here, from its split packages: the @tensorflow/tfjs umbrella would also
 * install the webgl backend, the converter and tfjs-data (about 190 MB), none of which run here.
 */
type Tf = typeof Core & Pick<typeof Layers, 'loadLayersModel'>;
declare namespace TF {
  type Tensor = Core.Tensor;
  type Scalar = Core.Scalar;
  type Variable = Core.Variable;
  type LayersModel = Layers.LayersModel;
}

let loaded: Promise<Tf> | undefined;

async function loadTf(): Promise<Tf> {
  loaded ??= (async () => {
    const core = await import('@tensorflow/tfjs-core');
    const layers = await import('@tensorflow/tfjs-layers');
    // Registers the cpu backend, the fallback when neither tfjs-node nor wasm loads.
    await import('@tensorflow/tfjs-backend-cpu');
    // PROD silences TF.js's console hints (the cpu backend's "install tfjs-node" banner included).
    core.env().set('PROD', true);
    registerChainedOps(core);
    return { ...core, loadLayersModel: layers.loadLayersModel };
  })();
  return loaded;
}

let gradients: Promise<unknown> | undefined;

/**
 * Registers the gradient functions of every op, which the learned soup takes gradients through:
 * the @tensorflow/tfjs umbrella registered them, tfjs-core alone does not. The build bundles them
 * beside this module (scripts/build.ts says why); TF.js must be loaded first.
 */
export async function loadGradients(): Promise<void> {
  gradients ??= import(new URL('./tfjs-gradients.js', import.meta.url).href);
  await gradients;
}

/** Importing a module by a computed name keeps TypeScript from requiring the optional package. */
async function importOptional(name: string): Promise<unknown> {
  return import(name);
}

export interface BackendChoice {
  backend: BackendName;
  /** Why faster backends were passed over, for --debug and the summary. */
  skipped: string[];
}

/**
 * Activates the fastest backend that loads: tfjs-node (if installed and its native library loads;
 * any error counts, not only "module not found"), then wasm, then cpu.
 */
export async function useBackend(forced?: BackendName): Promise<BackendChoice> {
  const tf = await loadTf();
  const skipped: string[] = [];
  for (const backend of backendOrder(forced)) {
    try {
      if (backend === 'node') await importOptional('@tensorflow/tfjs-node');
      if (backend === 'wasm') await import('@tensorflow/tfjs-backend-wasm');
      if (await tf.setBackend(tfjsBackendName(backend))) {
        await tf.ready();
        return { backend, skipped };
      }
      skipped.push(`${backend}: setBackend failed`);
    } catch (error) {
      skipped.push(`${backend}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  throw new UsageError(`the TF.js backend "${forced}" is not available (${skipped.join('; ')})`, {
    hint: forced === 'node' ? 'install @tensorflow/tfjs-node, or use --backend wasm' : undefined,
  });
}

export interface TfjsEvaluatorOptions {
  /** modelTopology from a model.json (an ingredient's, or --model's). */
  modelTopology: Record<string, unknown>;
  /** Where the topology came from, for error messages. */
  modelSource: string;
  dataset: Dataset;
  backend?: BackendName;
  batchSize?: number;
  /** Input tensors up to this many bytes are built once and kept; larger data is streamed per run. */
  preloadBytes?: number;
}

export class TfjsEvaluator implements Evaluator, GradientSource {
  readonly metrics = METRIC_NAMES;

  private constructor(
    private readonly tf: Tf,
    private readonly model: TF.LayersModel,
    /** The data set cut into batches once (slicing a tensor on the wasm backend copies all of it); undefined when it is streamed. */
    private readonly batches: TF.Tensor[] | undefined,
    private readonly fit: InputFit,
    private readonly dataset: Dataset,
    private readonly classes: number,
    private readonly probabilities: boolean,
    private readonly batchSize: number,
    readonly backend: BackendName,
  ) {}

  get description(): string {
    return `tfjs (${this.backend})`;
  }

  get samples(): number {
    return this.dataset.n;
  }

  static async create(options: TfjsEvaluatorOptions): Promise<TfjsEvaluator> {
    const { backend } = await useBackend(options.backend);
    const tf = await loadTf();
    let model: TF.LayersModel;
    try {
      model = await tf.loadLayersModel(tf.io.fromMemory({ modelTopology: options.modelTopology }));
    } catch (error) {
      throw new InputError(options.modelSource, `TF.js cannot build the model from its topology: ${(error as Error).message}`, { cause: error });
    }
    const modelDims = model.inputs[0]!.shape.slice(1).map((dim) => dim ?? -1);
    const outputShape = model.outputs[0]!.shape;
    const classes = outputShape[outputShape.length - 1] ?? 0;
    const { dataset } = options;
    let fit: InputFit;
    try {
      fit = dataset.fitTo(modelDims);
      const outside = dataset.y.findIndex((label) => label >= classes);
      if (outside >= 0)
        throw new InputError(dataset.path, `label ${dataset.y[outside]} of sample ${outside} is outside the model's ${classes} classes (0 to ${classes - 1})`);
    } catch (error) {
      model.dispose();
      throw error;
    }
    const batchSize = options.batchSize ?? 512;
    // Data that fits the budget becomes tensors once; larger data is read from disk batch by batch on every run.
    const inputBytes = dataset.n * fit.shape.reduce((a, b) => a * b, 1) * 4;
    const batches: TF.Tensor[] | undefined = inputBytes <= (options.preloadBytes ?? PRELOAD_BYTES) ? [] : undefined;
    if (batches !== undefined) {
      for await (const batch of dataset.batches(batchSize, fit)) batches.push(tf.tensor(batch.x, [batch.count, ...fit.shape], 'float32'));
    }
    const probabilities = endsInSoftmax(model);
    return new TfjsEvaluator(tf, model, batches, fit, dataset, classes, probabilities, batchSize, backend);
  }

  /** The model's weight names and shapes, to check a checkpoint against before any scoring. */
  weightSpecs(): { name: string; shape: number[] }[] {
    return this.model.weights.map((weight) => ({ name: weight.originalName, shape: weight.shape.map((dim) => dim ?? -1) }));
  }

  async evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound): Promise<Evaluation & { metrics: Metrics; n: number }> {
    const accumulator = new MetricAccumulator(this.classes, this.probabilities);
    const { pruned, scored } = await this.run(candidate, signal, (outputs, start, size) => {
      accumulator.add(outputs, this.dataset.y.subarray(start, start + size));
      if (bound === undefined) return false;
      const reachable = accumulator.bestReachable(bound.metric, this.dataset.n - start - size);
      return reachable !== undefined && !improves(bound.direction, reachable, bound.best, bound.acceptTies);
    });
    const metrics = accumulator.result();
    if (pruned) metrics[bound!.metric as MetricName] = accumulator.bestReachable(bound!.metric, this.dataset.n - scored)!;
    return { metrics, n: this.dataset.n, scored, pruned };
  }

  /** The model's outputs on every sample (n rows of `classes` values), for ensembles. */
  async predict(candidate: CandidateWeights, signal?: AbortSignal): Promise<Float32Array> {
    const outputs = new Float32Array(this.dataset.n * this.classes);
    await this.run(candidate, signal, (batch, start) => {
      outputs.set(batch, start * this.classes);
      return false;
    });
    return outputs;
  }

  /** Runs the model batch by batch, handing each batch's outputs to `onBatch`, which may stop the run. */
  private async run(
    candidate: CandidateWeights,
    signal: AbortSignal | undefined,
    onBatch: (outputs: Float32Array, start: number, size: number) => boolean,
  ): Promise<{ pruned: boolean; scored: number }> {
    const { tf, dataset } = this;
    const tensorsBefore = tf.memory().numTensors;
    await this.load(candidate);
    let scored = 0;
    let pruned = false;
    for (let start = 0; start < dataset.n && !pruned; start += this.batchSize) {
      throwIfAborted(signal);
      const size = Math.min(this.batchSize, dataset.n - start);
      const input = this.batches?.[start / this.batchSize] ?? tf.tensor(await dataset.read(start, size, this.fit), [size, ...this.fit.shape], 'float32');
      // predictOnBatch: predict() would cut the batch again into slices of 32, each a full copy on wasm.
      const batch = tf.tidy(() => this.model.predictOnBatch(input) as TF.Tensor);
      if (this.batches === undefined) input.dispose();
      const values = (await batch.data()) as Float32Array;
      batch.dispose();
      scored += size;
      pruned = onBatch(values, start, size);
    }
    const leaked = tf.memory().numTensors - tensorsBefore;
    if (leaked !== 0) throw new Error(`internal: ${leaked} tensors leaked while scoring a candidate`);
    return { pruned: pruned && scored < dataset.n, scored };
  }

  /** Metrics of outputs on this evaluator's data set (a model's, or an ensemble's mean). */
  scoreOutputs(outputs: ArrayLike<number>): Metrics {
    const accumulator = new MetricAccumulator(this.classes, this.probabilities);
    accumulator.add(outputs, this.dataset.y);
    return accumulator.result();
  }

  /** Swaps the candidate's weights into the model, one tensor at a time. */
  private async load(candidate: CandidateWeights): Promise<void> {
    const { tf } = this;
    const byName = new Map(candidate.tensors.map((tensor) => [tensor.name, tensor]));
    for (const weight of this.model.weights) {
      const tensor = byName.get(weight.originalName);
      if (tensor === undefined) throw new InputError('candidate', `has no tensor for the model weight "${weight.originalName}"`);
      const values = weight.dtype === 'int32' ? new Int32Array((await candidate.bytes(tensor.name)).buffer) : await candidate.floats(tensor.name);
      const next = tf.tensor(values, weight.shape as number[], weight.dtype);
      weight.write(next);
      next.dispose();
    }
  }

  /**
   * The mean cross-entropy of `beta` times the model's logits on the given samples, and its gradient
   * with respect to every float weight of the model and to beta: what the learned soup chains back to
   * its mixing coefficients. For a model ending in softmax, the logits are the log of its (clipped)
   * probabilities, so beta scales the logits before the softmax either way, as the paper's code does.
   * Runs in inference mode (no dropout), so a gradient is a deterministic function of the weights.
   */
  async lossGradients(candidate: CandidateWeights, beta: number, samples: ArrayLike<number>): Promise<LossGradients> {
    const { tf, dataset } = this;
    await loadGradients();
    const tensorsBefore = tf.memory().numTensors;
    await this.load(candidate);
    const sampleSize = this.fit.shape.reduce((a, b) => a * b, 1);
    const x = new Float32Array(samples.length * sampleSize);
    const y = new Int32Array(samples.length);
    for (let i = 0; i < samples.length; i++) {
      const k = samples[i]!;
      x.set(await dataset.read(k, 1, this.fit), i * sampleSize);
      y[i] = dataset.y[k]!;
    }
    const floatWeights = this.model.weights.filter((weight) => weight.dtype === 'float32');
    const variables = floatWeights.map((weight) => {
      const variable = weight.read() as TF.Variable;
      // The gradient is wanted for every float weight, frozen ones (batch-norm statistics) included.
      variable.trainable = true;
      return variable;
    });
    const betaVariable = tf.tidy(() => tf.variable(tf.scalar(beta), true));
    const inputs = tf.tensor(x, [samples.length, ...this.fit.shape], 'float32');
    const labels = tf.tidy(() => tf.oneHot(tf.tensor1d(y, 'int32'), this.classes));
    let result: LossGradients;
    try {
      const { value, grads } = tf.variableGrads(() => {
        const outputs = this.model.apply(inputs, { training: false }) as TF.Tensor;
        const logits = this.probabilities ? tf.log(tf.clipByValue(outputs, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)) : outputs;
        return tf.losses.softmaxCrossEntropy(labels, tf.mul(logits, betaVariable)) as TF.Scalar;
      }, [...variables, betaVariable]);
      try {
        const weights = new Map<string, Float32Array>();
        for (const [i, weight] of floatWeights.entries()) {
          const gradient = grads[variables[i]!.name];
          const size = weight.shape.reduce<number>((a, b) => a * (b ?? 1), 1);
          weights.set(weight.originalName, gradient === undefined ? new Float32Array(size) : ((await gradient.data()) as Float32Array));
        }
        result = { loss: (await value.data())[0]!, weights, beta: (await grads[betaVariable.name]!.data())[0]! };
      } finally {
        tf.dispose([value, ...Object.values(grads)]);
      }
    } finally {
      tf.dispose([inputs, labels, betaVariable]);
    }
    const leaked = tf.memory().numTensors - tensorsBefore;
    if (leaked !== 0) throw new Error(`internal: ${leaked} tensors leaked while taking gradients`);
    return result;
  }

  /** Tensors alive now, for tests that check nothing leaks between candidates. */
  liveTensors(): number {
    return this.tf.memory().numTensors;
  }

  async dispose(): Promise<void> {
    if (this.batches !== undefined) this.tf.dispose(this.batches);
    this.model.dispose();
  }
}

/** Whether the model's outputs are probabilities: its last layer is softmax or has a softmax activation. */
function endsInSoftmax(model: TF.LayersModel): boolean {
  const last = model.layers[model.layers.length - 1];
  if (last === undefined) return false;
  if (last.getClassName() === 'Softmax') return true;
  const config = last.getConfig() as { activation?: unknown };
  return config.activation === 'softmax';
}
