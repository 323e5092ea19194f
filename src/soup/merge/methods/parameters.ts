/**
 * Merge parameters as mergekit reads them: a value is a scalar, a gradient (a list interpolated over
 * the layer index), or a list of {filter, value} entries of which the first matching one applies.
 * Values are resolved per tensor, so one recipe can treat attention and MLP weights differently.
 */
import { z } from 'zod';
import { UsageError } from '../../../errors.js';

export type Scalar = number | boolean | string;
/** A scalar or a gradient; a gradient holds numbers only. */
export type Setting = Scalar | number[];
export interface FilteredSetting {
  filter?: string;
  value: Setting;
}
export type ParameterValue = Setting | FilteredSetting[];

export interface ParameterDef {
  /** 'model': may differ per ingredient (weight, density); 'global': one for the whole merge (lambda, normalize). */
  scope: 'model' | 'global';
  /** Checks one scalar; its message is shown after the parameter's path. */
  schema: z.ZodType<Scalar>;
  default?: Scalar;
  required?: boolean;
  description: string;
}

/** Points of one gradient: mergekit's have a handful, at most one per layer. */
export const MAX_GRADIENT_POINTS = 10_000;

export type ParameterDefs = Readonly<Record<string, ParameterDef>>;

/** Messages shared by the methods' schemas, so that errors read the same everywhere. */
export const number = (): z.ZodNumber => z.number({ invalid_type_error: 'must be a number' });
export const unitInterval = (): z.ZodType<number> => number().refine((value) => value > 0 && value <= 1, { message: 'must be in (0, 1]' });
export const fraction = (): z.ZodType<number> => number().refine((value) => value >= 0 && value <= 1, { message: 'must be in [0, 1]' });
export const boolean = (): z.ZodBoolean => z.boolean({ invalid_type_error: 'must be true or false' });

/**
 * Where the layer index is in a tensor name, and how many layers there are, as mergekit infers them:
 * the first `.N.` in the name is the layer index, and names sharing the text before it form one stack
 * of layers (mergekit's module). Gradients are interpolated at t = layer / (layers - 1); a stack of
 * one layer takes t = 1 (the gradient's last value), as mergekit's planner does.
 */
export class LayerIndex {
  /** mergekit's RE_LAYER_INDEX (architecture/auto.py): "model.layers.12.", "transformer.h.3.", "net.0.". */
  static readonly DEFAULT_PATTERN = /\.(\d+)\./;
  /** The largest layer count of any stack. */
  readonly layers: number;
  private readonly counts = new Map<string, number>();

  constructor(
    names: readonly string[],
    private readonly pattern: RegExp = LayerIndex.DEFAULT_PATTERN,
  ) {
    for (const name of names) {
      const found = this.find(name);
      if (found !== undefined) this.counts.set(found.stack, Math.max(this.counts.get(found.stack) ?? 0, found.layer + 1));
    }
    this.layers = Math.max(0, ...this.counts.values());
  }

  /** The layer and the stack it belongs to (the name before the index; one stack for a --layer-pattern). */
  private find(name: string): { layer: number; stack: string } | undefined {
    const match = this.pattern.exec(name);
    const digits = match?.[1] ?? match?.[0];
    if (match === null || digits === undefined) return undefined;
    const layer = Number.parseInt(digits, 10);
    if (!Number.isFinite(layer)) return undefined;
    return { layer, stack: this.pattern === LayerIndex.DEFAULT_PATTERN ? name.slice(0, match.index) : '' };
  }

  layerOf(name: string): number | undefined {
    return this.find(name)?.layer;
  }

  /** Where a tensor lies along its stack: 0 for tensors outside layers, 1 for the last layer (and for a single layer). */
  position(name: string): number {
    const found = this.find(name);
    if (found === undefined) return 0;
    const layers = this.counts.get(found.stack) ?? found.layer + 1;
    if (layers <= 1) return 1;
    return found.layer / (layers - 1);
  }
}

/** The value of a gradient at t in [0, 1], linear between its evenly spaced points. */
export function interpolateGradient(points: readonly number[], t: number): number {
  if (points.length === 1) return points[0]!;
  const scaled = Math.min(1, Math.max(0, t)) * (points.length - 1);
  const lower = Math.floor(scaled);
  if (lower >= points.length - 1) return points[points.length - 1]!;
  const frac = scaled - lower;
  return points[lower]! * (1 - frac) + points[lower + 1]! * frac;
}

function isFilterList(value: ParameterValue): value is FilteredSetting[] {
  return Array.isArray(value) && value.length > 0 && typeof value[0] === 'object';
}

/** The value for one tensor, or undefined when a filter list has no entry for it. */
export function resolveValue(value: ParameterValue, tensor: string, layers: LayerIndex): Scalar | undefined {
  let setting: Setting;
  if (isFilterList(value)) {
    const entry = value.find((candidate) => candidate.filter === undefined || candidate.filter === '*' || tensor.includes(candidate.filter));
    if (entry === undefined) return undefined;
    setting = entry.value;
  } else {
    setting = value as Setting;
  }
  return Array.isArray(setting) ? interpolateGradient(setting, layers.position(tensor)) : setting;
}

/**
 * The parameters one tensor merges with: per-model values beat global ones, which beat defaults.
 * Model-scoped parameters get one value per ingredient.
 */
export function resolveParameters(
  defs: ParameterDefs,
  global: Readonly<Record<string, ParameterValue>>,
  perModel: readonly Readonly<Record<string, ParameterValue>>[],
  tensor: string,
  layers: LayerIndex,
  modelNames?: readonly string[],
): { global: Record<string, Scalar>; models: Record<string, Scalar>[] } {
  const resolved = (name: string, own: Readonly<Record<string, ParameterValue>> | undefined): Scalar | undefined => {
    const mine = own?.[name];
    const fromModel = mine === undefined ? undefined : resolveValue(mine, tensor, layers);
    if (fromModel !== undefined) return fromModel;
    const shared = global[name];
    const fromGlobal = shared === undefined ? undefined : resolveValue(shared, tensor, layers);
    return fromGlobal ?? defs[name]!.default;
  };
  const globals: Record<string, Scalar> = {};
  const models: Record<string, Scalar>[] = perModel.map(() => ({}));
  for (const [name, def] of Object.entries(defs)) {
    if (def.scope === 'global') {
      const value = resolved(name, undefined);
      if (value === undefined && def.required === true) refuseMissing(name, tensor, undefined);
      if (value !== undefined) globals[name] = value;
    } else {
      perModel.forEach((own, k) => {
        const value = resolved(name, own);
        if (value === undefined && def.required === true) refuseMissing(name, tensor, modelNames?.[k] ?? `models[${k}]`);
        if (value !== undefined) models[k]![name] = value;
      });
    }
  }
  return { global: globals, models };
}

/**
 * A required parameter whose filter lists match none of a tensor's names and that has no global
 * value: mergekit stops with "Missing required parameter weight for MODEL.TENSOR", and so does soup.
 */
function refuseMissing(name: string, tensor: string, model: string | undefined): never {
  const where = model === undefined ? tensor : `${model}.${tensor}`;
  throw new UsageError(`missing required parameter ${name} for ${where}: no filter entry matches this tensor and no value applies to every tensor`, {
    hint: `add an entry without filter (or filter: "*") to ${name}, or set ${name} in the global parameters`,
  });
}

/** One problem with a recipe's parameters, as `path: message`. */
export interface ParameterIssue {
  path: string;
  message: string;
}

/**
 * Checks a parameter block against a method's definitions: known names, the right shape (scalar,
 * gradient or filter list), every scalar within range. `where` prefixes each path ("models[1].parameters").
 */
export function checkParameters(defs: ParameterDefs, values: Readonly<Record<string, unknown>>, where: string, scope: 'model' | 'global'): ParameterIssue[] {
  const issues: ParameterIssue[] = [];
  for (const [name, value] of Object.entries(values)) {
    const path = `${where}.${name}`;
    // Names come from the recipe: "__proto__" or "constructor" must not find Object.prototype's.
    const def = Object.hasOwn(defs, name) ? defs[name] : undefined;
    if (def === undefined) {
      const known = Object.keys(defs).join(', ');
      issues.push({ path, message: `not a parameter of this method (it takes ${known === '' ? 'none' : known})` });
      continue;
    }
    if (def.scope === 'global' && scope === 'model') {
      issues.push({ path, message: 'applies to the whole merge: set it in the global parameters' });
      continue;
    }
    issues.push(...checkValue(def, value, path));
  }
  return issues;
}

function checkScalar(def: ParameterDef, value: unknown, path: string): ParameterIssue[] {
  const parsed = def.schema.safeParse(value);
  return parsed.success ? [] : [{ path, message: parsed.error.issues[0]?.message ?? 'is not valid' }];
}

function checkSetting(def: ParameterDef, value: unknown, path: string): ParameterIssue[] {
  if (!Array.isArray(value)) return checkScalar(def, value, path);
  if (value.length === 0) return [{ path, message: 'an empty list has no value' }];
  if (value.length > MAX_GRADIENT_POINTS) return [{ path, message: `a gradient of ${value.length} points; soup takes at most ${MAX_GRADIENT_POINTS}` }];
  return value.flatMap((point, i) =>
    typeof point === 'number' ? checkScalar(def, point, `${path}[${i}]`) : [{ path: `${path}[${i}]`, message: 'a gradient holds numbers only' }],
  );
}

function checkValue(def: ParameterDef, value: unknown, path: string): ParameterIssue[] {
  if (!Array.isArray(value) || value.length === 0 || typeof value[0] !== 'object' || value[0] === null) return checkSetting(def, value, path);
  return value.flatMap((entry: unknown, i) => {
    const at = `${path}[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return [{ path: at, message: 'must be {filter, value}' }];
    const { filter, value: inner, ...rest } = entry as Record<string, unknown>;
    const extra = Object.keys(rest)[0];
    if (extra !== undefined) return [{ path: `${at}.${extra}`, message: 'not supported (an entry has filter and value only)' }];
    if (filter !== undefined && typeof filter !== 'string') return [{ path: `${at}.filter`, message: 'must be a string' }];
    if (inner === undefined) return [{ path: `${at}.value`, message: 'is required' }];
    return checkSetting(def, inner, `${at}.value`);
  });
}

/** Required parameters that no model and no global block sets. */
export function missingParameters(
  defs: ParameterDefs,
  global: Readonly<Record<string, unknown>>,
  perModel: readonly Readonly<Record<string, unknown>>[],
  where: (k: number) => string,
): ParameterIssue[] {
  const issues: ParameterIssue[] = [];
  for (const [name, def] of Object.entries(defs)) {
    if (!def.required || global[name] !== undefined) continue;
    if (def.scope === 'global') {
      issues.push({ path: `parameters.${name}`, message: 'is required' });
      continue;
    }
    perModel.forEach((own, k) => {
      if (own[name] === undefined) issues.push({ path: `${where(k)}.${name}`, message: 'is required' });
    });
  }
  return issues;
}
