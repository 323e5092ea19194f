/**
 * The only module that loads onnxruntime-node. It turns a model into a skeleton whose float
 * initializers are external data in one virtual file, then scores each candidate in a session
 * created from that skeleton and the candidate's weights: nothing is re-serialised per candidate
 * but the weights themselves. Commands that never score ONNX models never load ONNX Runtime.
 */
import { availableParallelism } from 'node:os';
import type * as Ort from 'onnxruntime-node';
import { dtypeSize, encodeFloats, isFloatDType, numel, type FloatDType } from '../checkpoint/dtype.js';
import type { OnnxCheckpoint } from '../checkpoint/onnx/reader.js';
import { readPieces, rebuildModel, type TensorPlan } from '../checkpoint/onnx/rebuild.js';
import type { OnnxInitializer, ValueInfo } from '../checkpoint/onnx/scan.js';
import { concatBytes } from '../checkpoint/onnx/protobuf.js';
import { PRELOAD_BYTES, type Dataset } from '../data/dataset.js';
import type { NamedInputs } from '../data/named-inputs.js';
import { InputError, UsageError, throwIfAborted } from '../errors.js';
import type { CandidateWeights, Evaluation, Evaluator, ScoreBound } from './evaluator.js';
import { METRIC_NAMES, MetricAccumulator, improves, type MetricName, type Metrics } from './metrics.js';

type OrtModule = typeof Ort;

/** The virtual file the skeleton's float initializers point into. */
const WEIGHTS_FILE = 'soup-weights.bin';
/** Offsets of tensors inside the weights file are aligned, as ONNX Runtime prefers for external data. */
const ALIGNMENT = 64;

let loaded: Promise<OrtModule> | undefined;

/** Importing by a computed name keeps the bundler from inlining the native package. */
async function importOptional(name: string): Promise<unknown> {
  return import(name);
}

async function loadOrt(): Promise<OrtModule> {
  loaded ??= importOptional('onnxruntime-node').then(
    (module) => module as OrtModule,
    (error: unknown) => {
      loaded = undefined;
      throw new UsageError(`scoring ONNX models needs onnxruntime-node, which cannot be loaded (${(error as Error).message.split('\n')[0]})`, {
        hint: 'install it: ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node (the CPU build needs no download); or score with --eval-cmd',
        cause: error,
      });
    },
  );
  return loaded;
}

/** Data for the model: one array per model input, and the labels. */
export type OnnxData = { kind: 'single'; dataset: Dataset } | { kind: 'named'; inputs: NamedInputs };

export interface OnnxEvaluatorOptions {
  /** The model whose graph runs (an ingredient, or --model's export). */
  model: OnnxCheckpoint;
  data: OnnxData;
  /** The output holding logits or probabilities (default: the first). */
  outputName?: string | undefined;
  batchSize?: number;
  threads?: number;
  /** A single input up to this many bytes is laid out once and kept; larger data is streamed per run. */
  preloadBytes?: number;
}

type FeedValues = Float32Array | BigInt64Array | Int32Array | Uint8Array | Float64Array;

interface Feed {
  name: string;
  type: 'float32' | 'int64' | 'int32' | 'bool' | 'float64';
  /**
   * Samples [start, start + count) in the input's element type: a view of data converted once and
   * kept, or read from the data set on every run when it is too large to keep (an image cache).
   */
  slice(start: number, count: number): Promise<FeedValues>;
  sampleShape: number[];
}

interface SwappedWeight {
  initializer: OnnxInitializer;
  offset: number;
  length: number;
}

const ELEMENT_TYPES: Record<number, Feed['type']> = { 1: 'float32', 6: 'int32', 7: 'int64', 9: 'bool', 11: 'float64' };

export class OnnxEvaluator implements Evaluator {
  readonly metrics = METRIC_NAMES;

  private constructor(
    private readonly ort: OrtModule,
    private readonly skeleton: Uint8Array,
    private readonly weights: SwappedWeight[],
    private readonly weightBytes: number,
    private readonly feeds: Feed[],
    private readonly labels: Int32Array,
    private readonly outputName: string,
    private readonly classes: number,
    private readonly probabilities: boolean,
    private readonly batchSize: number,
    readonly threads: number,
    /** Where the data came from, for error messages. */
    private readonly dataPath: string,
    private readonly modelPath: string,
  ) {}

  private spare: Uint8Array | undefined;

  get description(): string {
    return `onnxruntime (cpu, ${this.threads} threads)`;
  }

  /** The float initializers that each candidate must provide (name, shape, dtype). */
  weightSpecs(): { name: string; shape: number[]; dtype: string }[] {
    return this.weights.map(({ initializer }) => ({ name: initializer.name, shape: initializer.dims, dtype: initializer.dtype }));
  }

  static async create(options: OnnxEvaluatorOptions): Promise<OnnxEvaluator> {
    const ort = await loadOrt();
    const { model } = options;
    const scan = model.scan;
    const initializerNames = new Set(scan.initializers.map((initializer) => initializer.name));
    // keep_initializers_as_inputs=True lists weights as graph inputs; ONNX Runtime would then keep the
    // stored values whatever we swap in, so those inputs are removed from the skeleton.
    const dropInputs = new Set(scan.inputs.filter((input) => initializerNames.has(input.name)).map((input) => input.name));
    const modelInputs = scan.inputs.filter((input) => !dropInputs.has(input.name));
    const weights: SwappedWeight[] = [];
    let offset = 0;
    const plan = (initializer: OnnxInitializer): TensorPlan => {
      if (!isFloatDType(initializer.dtype)) {
        return initializer.data.kind === 'external' ? { kind: 'raw', bytes: undefined } : { kind: 'copy' };
      }
      const length = numel(initializer.dims) * dtypeSize(initializer.dtype);
      weights.push({ initializer, offset, length });
      const placed: TensorPlan = { kind: 'external', location: WEIGHTS_FILE, offset };
      offset += Math.ceil(length / ALIGNMENT) * ALIGNMENT;
      return placed;
    };
    const { pieces } = rebuildModel(scan, plan, { dropInputs });
    const parts: Uint8Array[] = [];
    for await (const part of readPieces(model.reader, pieces, async function* (piece) {
      yield await model.readBytes(piece.initializer.name);
    })) {
      parts.push(part.slice());
    }
    const skeleton = concatBytes(parts);

    const output = options.outputName === undefined ? scan.outputs[0] : scan.outputs.find((candidate) => candidate.name === options.outputName);
    if (output === undefined) {
      throw new UsageError(
        options.outputName === undefined
          ? `${model.path}: the model has no outputs`
          : `--output-name: the model has no output "${options.outputName}" (it has ${scan.outputs.map((o) => o.name).join(', ')})`,
      );
    }
    const classes = output.dims[output.dims.length - 1];
    if (typeof classes !== 'number' || classes < 1) {
      throw new InputError(model.path, `output "${output.name}" has no fixed number of classes in its last dimension ([${output.dims.join(', ')}])`);
    }
    const probabilities = endsInSoftmax(model, output.name);
    const { feeds, labels, dataPath } = await makeFeeds(modelInputs, options.data, model.path, options.preloadBytes ?? PRELOAD_BYTES);
    const outside = labels.findIndex((label) => label >= classes);
    if (outside >= 0)
      throw new InputError(dataPath, `label ${labels[outside]} of sample ${outside} is outside the model's ${classes} classes (0 to ${classes - 1})`);
    const fixedBatch = modelInputs.map((input) => input.dims[0]).find((dim): dim is number => typeof dim === 'number');
    const batchSize = fixedBatch ?? options.batchSize ?? 512;
    if (fixedBatch !== undefined && labels.length % fixedBatch !== 0) {
      throw new InputError(model.path, `the model takes batches of exactly ${fixedBatch} samples, which ${labels.length} samples do not divide into`, {
        hint: 'export with a dynamic batch dimension (dynamic_axes)',
      });
    }
    const threads = options.threads ?? availableParallelism();
    return new OnnxEvaluator(ort, skeleton, weights, offset, feeds, labels, output.name, classes, probabilities, batchSize, threads, dataPath, model.path);
  }

  async evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound): Promise<Evaluation & { metrics: Metrics; n: number }> {
    const n = this.labels.length;
    const accumulator = new MetricAccumulator(this.classes, this.probabilities);
    const { pruned, scored } = await this.run(candidate, signal, (outputs, start, size) => {
      accumulator.add(outputs, this.labels.subarray(start, start + size));
      if (bound === undefined) return false;
      const reachable = accumulator.bestReachable(bound.metric, n - start - size);
      return reachable !== undefined && !improves(bound.direction, reachable, bound.best, bound.acceptTies);
    });
    const metrics = accumulator.result();
    if (pruned) metrics[bound!.metric as MetricName] = accumulator.bestReachable(bound!.metric, n - scored)!;
    return { metrics, n, scored, pruned };
  }

  async predict(candidate: CandidateWeights, signal?: AbortSignal): Promise<Float32Array> {
    const outputs = new Float32Array(this.labels.length * this.classes);
    await this.run(candidate, signal, (batch, start) => {
      outputs.set(batch, start * this.classes);
      return false;
    });
    return outputs;
  }

  scoreOutputs(outputs: ArrayLike<number>): Metrics {
    const accumulator = new MetricAccumulator(this.classes, this.probabilities);
    accumulator.add(outputs, this.labels);
    return accumulator.result();
  }

  async dispose(): Promise<void> {}

  /**
   * Runs the candidate batch by batch. session.run blocks the event loop for a batch, so the loop
   * yields between batches: a Ctrl-C is seen after at most one batch.
   */
  private async run(
    candidate: CandidateWeights,
    signal: AbortSignal | undefined,
    onBatch: (outputs: Float32Array, start: number, size: number) => boolean,
  ): Promise<{ pruned: boolean; scored: number }> {
    throwIfAborted(signal);
    const { session, data } = await this.createSession(candidate);
    const n = this.labels.length;
    let scored = 0;
    let pruned = false;
    try {
      for (let start = 0; start < n && !pruned; start += this.batchSize) {
        await new Promise((resolve) => setImmediate(resolve));
        throwIfAborted(signal);
        const size = Math.min(this.batchSize, n - start);
        const results = await session.run(await this.batchFeeds(start, size), [this.outputName]);
        const output = results[this.outputName]!;
        if (output.type !== 'float32' || output.size !== size * this.classes) {
          throw new InputError(
            this.dataPath,
            `output "${this.outputName}" has shape [${output.dims.join(', ')}] (${output.type}), not [${size}, ${this.classes}] float32`,
          );
        }
        scored += size;
        pruned = onBatch(output.data as Float32Array, start, size);
      }
    } finally {
      await session.release();
      this.spare = data;
    }
    return { pruned: pruned && scored < n, scored };
  }

  /** The candidate's weights, laid out as the skeleton's external data, and a session on them. */
  private async createSession(candidate: CandidateWeights): Promise<{ session: Ort.InferenceSession; data: Uint8Array }> {
    // One buffer serves candidate after candidate (a session is released before the next is made);
    // an evaluation running meanwhile on the same evaluator gets its own.
    const data = this.spare ?? new Uint8Array(this.weightBytes);
    this.spare = undefined;
    for (const { initializer, offset, length } of this.weights) {
      const values = await candidate.floats(initializer.name);
      if (values.length * dtypeSize(initializer.dtype) !== length) {
        throw new InputError(
          'candidate',
          `has ${values.length} values for "${initializer.name}", whose shape [${initializer.dims.join(', ')}] needs ${length / dtypeSize(initializer.dtype)}`,
        );
      }
      const bytes =
        initializer.dtype === 'F32'
          ? new Uint8Array(values.buffer, values.byteOffset, values.byteLength)
          : encodeFloats(values, initializer.dtype as FloatDType);
      data.set(bytes, offset);
    }
    try {
      const session = await this.ort.InferenceSession.create(this.skeleton, {
        intraOpNumThreads: this.threads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        // Spinning worker threads take the core that the main thread needs between batches (metrics,
        // the next feed); without spinning, scoring the fixtures ran 2-10x faster on our loaded 2-core VMs.
        extra: { session: { intra_op: { allow_spinning: '0' } } },
        externalData: [{ path: WEIGHTS_FILE, data }],
      });
      return { session, data };
    } catch (error) {
      this.spare = data;
      throw new InputError(this.modelPath, `ONNX Runtime cannot load the model: ${(error as Error).message.split('\n')[0]}`, { cause: error });
    }
  }

  /** One batch of every input, as ONNX Runtime tensors shaped [size, ...sample shape]. */
  private async batchFeeds(start: number, size: number): Promise<Record<string, Ort.Tensor>> {
    const feeds: Record<string, Ort.Tensor> = {};
    for (const feed of this.feeds) feeds[feed.name] = new this.ort.Tensor(feed.type, await feed.slice(start, size), [size, ...feed.sampleShape]);
    return feeds;
  }
}

/**
 * Data for each model input, converted once to its element type. A single-input model takes the
 * data set's samples, reshaped to the input's shape when the element counts agree; a model with
 * several inputs takes the .npz arrays named like them.
 */
async function makeFeeds(
  inputs: readonly ValueInfo[],
  data: OnnxData,
  modelPath: string,
  preloadBytes: number,
): Promise<{ feeds: Feed[]; labels: Int32Array; dataPath: string }> {
  if (inputs.length === 0) throw new InputError(modelPath, 'the model has no inputs to feed');
  const typeOf = (input: ValueInfo): Feed['type'] => {
    const type = ELEMENT_TYPES[input.elemType];
    if (type === undefined)
      throw new InputError(
        modelPath,
        `input "${input.name}" has element type ${input.elemType}, which soup cannot feed (float, double, int32, int64 and bool can be)`,
      );
    return type;
  };
  if (data.kind === 'single') {
    const { dataset } = data;
    if (inputs.length > 1) {
      throw new InputError(
        dataset.path,
        `the model has ${inputs.length} inputs (${inputs.map((input) => input.name).join(', ')}): give an .npz with an array for each, named like them, and "y"`,
      );
    }
    const input = inputs[0]!;
    // The data set decides how samples map to the input (NCHW or NHWC images, flat reshapes) or says which shapes disagree.
    const fit = dataset.fitTo(input.dims.slice(1).map((dim) => (typeof dim === 'number' ? dim : -1)));
    const type = typeOf(input);
    const streamed = dataset.n * numel(fit.shape) * 4 > preloadBytes;
    const slice = streamed
      ? async (start: number, count: number) => convert(await dataset.read(start, count, fit), type)
      : kept(convert(await dataset.read(0, dataset.n, fit), type), numel(fit.shape));
    return { feeds: [{ name: input.name, type, slice, sampleShape: fit.shape }], labels: dataset.y, dataPath: dataset.path };
  }
  const { inputs: named } = data;
  const feeds = inputs.map((input): Feed => {
    const array = named.arrays.get(input.name)!;
    const sampleShape = array.shape.slice(1);
    const expected = input.dims.slice(1);
    const mismatch = expected.length !== sampleShape.length || expected.some((dim, i) => typeof dim === 'number' && dim !== sampleShape[i]);
    if (mismatch)
      throw new InputError(
        `${named.path}:${input.name}.npy`,
        `samples have shape [${sampleShape.join(', ')}], the model's input "${input.name}" expects [${expected.join(', ')}]`,
      );
    return { name: input.name, type: typeOf(input), slice: kept(convert(array.values, typeOf(input)), numel(sampleShape)), sampleShape };
  });
  return { feeds, labels: named.y, dataPath: named.path };
}

/** Batches as views of values held in memory. */
function kept(values: FeedValues, perSample: number): Feed['slice'] {
  return async (start, count) => values.subarray(start * perSample, (start + count) * perSample);
}

function convert(values: ArrayLike<number>, type: Feed['type']): FeedValues {
  switch (type) {
    case 'float32':
      return values instanceof Float32Array ? values : Float32Array.from(values);
    case 'float64':
      return Float64Array.from(values);
    case 'int32':
      return values instanceof Int32Array ? values : Int32Array.from(values);
    case 'int64':
      return BigInt64Array.from(Array.from(values, (value) => BigInt(Math.trunc(value))));
    case 'bool':
      return Uint8Array.from(values, (value) => (value === 0 ? 0 : 1));
  }
}

/** Whether the output is a probability distribution: the node producing it is a Softmax. */
function endsInSoftmax(model: OnnxCheckpoint, output: string): boolean {
  return model.scan.nodes.some((node) => node.opType === 'Softmax' && node.outputs.includes(output));
}
