/**
 * Runs a merge method over checkpoints, one tensor at a time: for each float tensor it reads the
 * base's and every ingredient's values (memory for N + 1 copies of that tensor, never whole models),
 * resolves the parameters for that tensor and hands them to the method in float64.
 */
import { encodeFloats, isFloatDType } from '../../checkpoint/dtype.js';
import type { TensorProducer } from '../../checkpoint/safetensors.js';
import type { Checkpoint, TensorInfo } from '../../checkpoint/types.js';
import { InputError, throwIfAborted } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import { indexOfNonFinite } from '../kernel/average.js';
import { copiedTensorWarning } from '../kernel/mix.js';
import type { SoupBuilder } from '../strategies/candidate.js';
import { readChecked, type CandidateWeights } from '../../weights/candidate.js';
import type { MergeMethod, TensorInputs } from './methods/method.js';
import type { MergeConfig } from './config.js';
import type { MergeCheckpoints } from './inputs.js';
import { type LayerIndex, resolveParameters, type ParameterValue } from './methods/parameters.js';

export interface MergePlan {
  method: MergeMethod;
  /** Required by methods that add task vectors to it; never one of `models`. */
  base?: Checkpoint | undefined;
  models: readonly Checkpoint[];
  /** Each model's own parameters, in `models` order. */
  modelParameters: readonly Readonly<Record<string, ParameterValue>>[];
  parameters: Readonly<Record<string, ParameterValue>>;
  seed: number;
  layers: LayerIndex;
  /** Parameters that differ by tensor beyond filters and gradients (slices: each slice's sources and parameters). */
  parametersFor?:
    | ((name: string) => { global: Readonly<Record<string, ParameterValue>>; perModel: readonly Readonly<Record<string, ParameterValue>>[] })
    | undefined;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  /** Bytes read (for a bar) and warnings (integer tensors that differ). */
  onProgress?: ProgressListener;
}

/** A fresh float64 copy: methods compute in place in their inputs, and a reader's array may be shared. */
function toFloat64(values: Float32Array | Float64Array): Float64Array {
  return new Float64Array(values);
}

export class Merge {
  private readonly reference: Checkpoint;
  private readonly byName: Map<string, TensorInfo>;
  private prepared: Promise<unknown> | undefined;
  private bytesRead = 0;
  private readonly totalBytes: number;
  /** Stored bytes of each tensor summed over every input, for progress. */
  private readonly tensorBytes = new Map<string, number>();

  constructor(readonly plan: MergePlan) {
    this.reference = plan.base ?? plan.models[0]!;
    this.byName = new Map(this.reference.tensors().map((tensor) => [tensor.name, tensor]));
    for (const checkpoint of this.inputs()) {
      for (const tensor of checkpoint.tensors()) this.tensorBytes.set(tensor.name, (this.tensorBytes.get(tensor.name) ?? 0) + tensor.storedBytes);
    }
    this.totalBytes = [...this.tensorBytes.values()].reduce((a, b) => a + b, 0);
  }

  /** The base (when there is one) and the models: everything a pass reads. */
  private inputs(): Checkpoint[] {
    return this.plan.base === undefined ? [...this.plan.models] : [this.plan.base, ...this.plan.models];
  }

  private advance(name: string): void {
    if (this.plan.onProgress === undefined) return;
    this.bytesRead += this.tensorBytes.get(name) ?? 0;
    this.plan.onProgress({ kind: 'read', bytes: this.bytesRead, total: this.totalBytes });
  }

  get tensors(): readonly TensorInfo[] {
    return this.reference.tensors();
  }

  private async read(checkpoint: Checkpoint, name: string): Promise<Float64Array> {
    return toFloat64(await readChecked(checkpoint, name, this.plan.allowNonFinite ?? false));
  }

  private resolve(name: string): ReturnType<typeof resolveParameters> {
    const { method, parameters, modelParameters, layers } = this.plan;
    const own = this.plan.parametersFor?.(name);
    return resolveParameters(
      method.parameters,
      own?.global ?? parameters,
      own?.perModel ?? modelParameters,
      name,
      layers,
      this.plan.models.map((model) => model.name),
    );
  }

  private async tensorInputs(tensor: TensorInfo): Promise<TensorInputs> {
    throwIfAborted(this.plan.signal);
    const { base, models, seed } = this.plan;
    const resolved = this.resolve(tensor.name);
    const values: Float64Array[] = [];
    for (const model of models) values.push(await this.read(model, tensor.name));
    return {
      tensor,
      base: base === undefined ? undefined : await this.read(base, tensor.name),
      models: values,
      names: models.map((model) => model.name),
      params: resolved.models,
      global: resolved.global,
      seed,
    };
  }

  /** The method's whole-model pass, run once, before the first tensor is merged. */
  private prepare(): Promise<unknown> {
    const { method, base, models } = this.plan;
    if (method.prepare === undefined) return Promise.resolve(undefined);
    const floats = this.tensors.filter((tensor) => isFloatDType(tensor.dtype));
    const merge = this;
    this.prepared ??= method.prepare({
      tensors: floats,
      resolve: (name) => this.resolve(name),
      async *deltas() {
        for (const tensor of floats) {
          throwIfAborted(merge.plan.signal);
          const from = await merge.read(base!, tensor.name);
          const deltas: Float64Array[] = [];
          for (const model of models) {
            const values = await merge.read(model, tensor.name);
            for (let i = 0; i < values.length; i++) values[i]! -= from[i]!;
            deltas.push(values);
          }
          yield deltas;
        }
      },
    });
    return this.prepared;
  }

  /** Resolves every float tensor's parameters, so a missing one stops the merge before any weight is read. */
  checkParameters(): this {
    for (const tensor of this.tensors) if (isFloatDType(tensor.dtype)) this.resolve(tensor.name);
    return this;
  }

  /** The merged values of one float tensor, in float64. */
  async mergeTensor(name: string): Promise<Float64Array> {
    const tensor = this.byName.get(name);
    if (tensor === undefined) throw new Error(`internal: no tensor "${name}" to merge`);
    const prepared = await this.prepare();
    const inputs = await this.tensorInputs(tensor);
    const merged = this.plan.method.mergeTensor(prepared === undefined ? inputs : { ...inputs, prepared });
    this.advance(name);
    const at = this.plan.allowNonFinite ? -1 : indexOfNonFinite(merged);
    if (at >= 0) {
      throw new InputError(this.reference.path, `the ${this.plan.method.name} merge gives ${merged[at]} at element ${at}`, {
        tensor: name,
        hint: 'check the parameters (a weight sum or a ratio near zero), or pass --allow-nonfinite to keep it',
      });
    }
    return merged;
  }

  /**
   * Integer and bool tensors (step counters, position ids) are copied, as soups copy them: the
   * base's, else the first ingredient's, with a warning if the models disagree.
   */
  async copy(name: string): Promise<Uint8Array> {
    const kept = await this.reference.readBytes(name);
    const differing: string[] = [];
    for (const model of this.plan.models) {
      if (model !== this.reference && Buffer.compare(kept, await model.readBytes(name)) !== 0) differing.push(model.name);
    }
    this.advance(name);
    if (differing.length > 0) this.plan.onProgress?.({ kind: 'warning', message: copiedTensorWarning(this.byName.get(name)!, differing, this.reference.name) });
    return kept;
  }

  /** The merge as a candidate, for evaluators (float32 values). */
  weights(): CandidateWeights {
    return {
      tensors: this.tensors,
      floats: async (name) => new Float32Array(await this.mergeTensor(name)),
      bytes: (name) => this.copy(name),
    };
  }

  /** Feeds a checkpoint writer straight from the float64 results, so an f64 output loses nothing. */
  producer(): TensorProducer {
    const merge = this;
    return async function* (tensor) {
      yield isFloatDType(tensor.dtype) ? encodeFloats(await merge.mergeTensor(tensor.name), tensor.dtype) : await merge.copy(tensor.name);
    };
  }
}

/**
 * A soup grown by greedy selection where every candidate is the method applied to the chosen
 * ingredients plus the candidate, as the method would ship it (TIES with one ingredient is the base
 * plus that ingredient's trimmed delta). Each ingredient keeps its own parameters, found by name.
 */
export class MethodSoup implements SoupBuilder {
  private members: Checkpoint[] = [];

  constructor(
    private readonly plan: Omit<MergePlan, 'models' | 'modelParameters'>,
    private readonly parametersOf: (checkpoint: Checkpoint) => Readonly<Record<string, ParameterValue>>,
  ) {}

  get size(): number {
    return this.members.length;
  }

  get chosen(): readonly Checkpoint[] {
    return this.members;
  }

  async add(checkpoint: Checkpoint): Promise<void> {
    this.members.push(checkpoint);
  }

  merge(extra?: Checkpoint): Merge {
    const models = extra === undefined ? this.members : [...this.members, extra];
    if (models.length === 0) throw new Error('internal: an empty soup has no weights');
    return new Merge({ ...this.plan, models, modelParameters: models.map((model) => this.parametersOf(model)) });
  }

  weights(extra?: Checkpoint): CandidateWeights {
    return this.merge(extra).weights();
  }
}

/** The merge a recipe describes, over its opened checkpoints. */
export function mergeFromConfig(
  config: MergeConfig,
  opened: MergeCheckpoints,
  options: { seed: number; layers: LayerIndex; allowNonFinite?: boolean; signal?: AbortSignal; onProgress?: ProgressListener },
): Merge {
  const merge = new Merge({
    method: config.method,
    base: opened.base,
    models: opened.models,
    modelParameters: config.models.map((entry) => entry.parameters),
    parameters: config.parameters,
    ...options,
    ...(opened.slices === undefined
      ? {}
      : { layers: opened.slices.layerIndex, parametersFor: (name: string) => opened.slices!.parametersFor(name, config.parameters) }),
  });
  return merge.checkParameters();
}
