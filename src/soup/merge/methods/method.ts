import type { TensorInfo } from '../../../checkpoint/types.js';
import type { ParameterDefs, Scalar } from './parameters.js';

/** What a method needs to merge one tensor: every input in float64, and the parameters resolved for it. */
export interface TensorInputs {
  tensor: TensorInfo;
  /** The base model's values; undefined for methods that take no base. */
  base: Float64Array | undefined;
  /** The ingredients' values, never including the base; fresh arrays the method may overwrite. */
  models: readonly Float64Array[];
  /** The ingredients' names, in the same order (random masks are keyed by them). */
  names: readonly string[];
  /** Per-ingredient parameters (weight, density, ...). */
  params: readonly Readonly<Record<string, Scalar>>[];
  /** Parameters of the whole merge (lambda, normalize, ...). */
  global: Readonly<Record<string, Scalar>>;
  /** --random-seed. */
  seed: number;
  /** Per-ingredient state a method computed over the whole model first (ties_scope: global). */
  prepared?: unknown;
}

/** One merge method, as mergekit's: a name, its parameters, and what it does to one tensor. */
export interface MergeMethod {
  readonly name: string;
  readonly description: string;
  /** 'required': the method adds to a base (task vectors); 'optional': it uses one when given; 'none': it takes none. */
  readonly base: 'required' | 'optional' | 'none';
  /**
   * Where mergekit hands a recipe's base_model to the method as one more model: 'weighted' when the
   * recipe lists it under models or a global weight gives it one (linear), 'always' (karcher).
   */
  readonly baseAsModel?: 'weighted' | 'always';
  /** How many ingredients (besides the base) it merges. */
  readonly minModels: number;
  readonly maxModels?: number;
  readonly parameters: ParameterDefs;
  /**
   * Work over the whole model before any tensor is merged (ties_scope: global); what it returns is
   * handed to every mergeTensor call as `prepared`.
   */
  prepare?(context: PrepareContext): Promise<unknown>;
  /** The merged values of one float tensor, in float64. */
  mergeTensor(inputs: TensorInputs): Float64Array;
}

/** What a method's whole-model pass can see. */
export interface PrepareContext {
  /** The float tensors to be merged, in order. */
  tensors: readonly TensorInfo[];
  /** The parameters resolved for one tensor. */
  resolve(name: string): { global: Record<string, Scalar>; models: Record<string, Scalar>[] };
  /** One pass over every float tensor, yielding each ingredient's delta from the base. */
  deltas(): AsyncIterable<readonly Float64Array[]>;
}
