/**
 * Runs a merge method over checkpoints, one tensor at a time: for each float tensor it reads the
 * base's and every ingredient's values (memory for N + 1 copies of that tensor, never whole models),
 * resolves the parameters for that tensor and hands them to the method in float64.
 */
import { encodeFloats, isFloatDType } from '../checkpoint/dtype.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, TensorInfo } from '../checkpoint/types.js';
import { throwIfAborted } from '../errors.js';
import type { CandidateWeights } from '../eval/evaluator.js';
import { readChecked, type SoupBuilder } from './candidate.js';
import type { MergeMethod, TensorInputs } from './methods/method.js';
import type { MergeConfig } from './merge-config.js';
import type { MergeCheckpoints } from './merge-inputs.js';
import { LayerIndex, resolveParameters, type ParameterValue } from './methods/parameters.js';

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
  allowNonFinite?: boolean;
  signal?: AbortSignal;
}

/** A fresh float64 copy: methods compute in place in their inputs, and a reader's array may be shared. */
function toFloat64(values: Float32Array | Float64Array): Float64Array {
  return new Float64Array(values);
}

export class Merge {
  private readonly reference: Checkpoint;
  private readonly byName: Map<string, TensorInfo>;
  private prepared: Promise<unknown> | undefined;

  constructor(readonly plan: MergePlan) {
    this.reference = plan.base ?? plan.models[0]!;
    this.byName = new Map(this.reference.tensors().map((tensor) => [tensor.name, tensor]));
  }

  get tensors(): readonly TensorInfo[] {
    return this.reference.tensors();
  }

  private async read(checkpoint: Checkpoint, name: string): Promise<Float64Array> {
    return toFloat64(await readChecked(checkpoint, name, this.plan.allowNonFinite ?? false));
  }

  private resolve(name: string): ReturnType<typeof resolveParameters> {
    const { method, parameters, modelParameters, layers } = this.plan;
    return resolveParameters(method.parameters, parameters, modelParameters, name, layers);
  }

  private async inputs(tensor: TensorInfo): Promise<TensorInputs> {
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

  /** The merged values of one float tensor, in float64. */
  async mergeTensor(name: string): Promise<Float64Array> {
    const tensor = this.byName.get(name);
    if (tensor === undefined) throw new Error(`internal: no tensor "${name}" to merge`);
    const prepared = await this.prepare();
    const inputs = await this.inputs(tensor);
    return this.plan.method.mergeTensor(prepared === undefined ? inputs : { ...inputs, prepared });
  }

  /** Integer and bool tensors are copied, as soups copy them: the base's, else the first ingredient's. */
  copy(name: string): Promise<Uint8Array> {
    return this.reference.readBytes(name);
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
  options: { seed: number; layers: LayerIndex; allowNonFinite?: boolean; signal?: AbortSignal },
): Merge {
  return new Merge({
    method: config.method,
    base: opened.base,
    models: opened.models,
    modelParameters: config.models.map((entry) => entry.parameters),
    parameters: config.parameters,
    ...options,
  });
}
