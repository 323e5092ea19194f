/**
 * Evolutionary merging (mergekit-evolve, Sakana's evolutionary model merge) on any evaluator: a
 * mergekit recipe whose parameters may be ranges, `weight: {min: 0, max: 1}`, searched by CMA-ES.
 * A range may stand wherever a number may: a model's or the global parameter, a point of a
 * gradient (one range per layer block), the value of a filter entry. Each candidate is the recipe
 * with every range replaced by a number, checked as `soup merge` checks it, so the best one is a
 * plain mergekit recipe that `soup merge` (and mergekit, for its methods) makes again.
 */
import { parseDocument, stringify } from 'yaml';
import { InputError } from '../../errors.js';
import { mergekitYaml, parseMergeYaml, type MergeConfig } from '../merge/config.js';
import { sha256Text } from '../../eval/score-cache.js';
import type { SearchSpace } from '../search/run.js';

/** One searched number: where it is in the recipe, and its range. */
export interface SearchRange {
  /** e.g. "models[1].parameters.density", "parameters.weight[2]". */
  path: string;
  /** The parameter it sets (for its schema), e.g. "density". */
  parameter: string;
  min: number;
  max: number;
  /** Where it sits in the parsed YAML: the container and the key or index. */
  at: (string | number)[];
}

export interface EvolveRecipe {
  file: string;
  /** The YAML as parsed, ranges in place. */
  raw: Record<string, unknown>;
  ranges: SearchRange[];
  /** The recipe at the middle of every range (checked; names the method, base and models). */
  middle: MergeConfig;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isRange(value: unknown): value is { min: unknown; max: unknown } {
  return isRecord(value) && 'min' in value && 'max' in value;
}

function findRanges(value: unknown, at: (string | number)[], path: string, parameter: string, file: string, out: SearchRange[]): void {
  if (isRange(value)) {
    const extra = Object.keys(value).find((key) => key !== 'min' && key !== 'max');
    if (extra !== undefined) throw new InputError(file, `${path}.${extra}: not supported (a range is {min, max})`);
    const { min, max } = value;
    if (typeof min !== 'number' || !Number.isFinite(min)) throw new InputError(file, `${path}.min: must be a number`);
    if (typeof max !== 'number' || !Number.isFinite(max)) throw new InputError(file, `${path}.max: must be a number`);
    if (!(min < max)) throw new InputError(file, `${path}: min ${min} is not below max ${max}`, { hint: 'give a fixed value as a plain number' });
    out.push({ path, parameter, min, max, at });
    return;
  }
  if (Array.isArray(value)) value.forEach((item, i) => findRanges(item, [...at, i], `${path}[${i}]`, parameter, file, out));
  else if (isRecord(value)) {
    for (const [key, inner] of Object.entries(value)) {
      if (key === 'filter') continue;
      findRanges(inner, [...at, key], key === 'value' ? `${path}.value` : `${path}.${key}`, parameter, file, out);
    }
  }
}

function ranged(raw: Record<string, unknown>, file: string): SearchRange[] {
  const ranges: SearchRange[] = [];
  const scan = (parameters: unknown, at: (string | number)[], where: string): void => {
    if (!isRecord(parameters)) return;
    for (const [name, value] of Object.entries(parameters)) findRanges(value, [...at, name], `${where}.${name}`, name, file, ranges);
  };
  scan(raw.parameters, ['parameters'], 'parameters');
  if (Array.isArray(raw.models))
    raw.models.forEach((entry, k) => isRecord(entry) && scan(entry.parameters, ['models', k, 'parameters'], `models[${k}].parameters`));
  return ranges;
}

function setAt(target: unknown, at: readonly (string | number)[], value: number): void {
  let node = target as Record<string | number, unknown>;
  for (const key of at.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[at.at(-1)!] = value;
}

/** The recipe as a YAML document with these values in place of the ranges. */
export function substitute(recipe: Pick<EvolveRecipe, 'raw' | 'ranges'>, values: readonly number[]): Record<string, unknown> {
  const copy = structuredClone(recipe.raw);
  recipe.ranges.forEach((range, i) => setAt(copy, range.at, values[i]!));
  return copy;
}

/** Reads an evolve recipe: a mergekit YAML whose parameters may be ranges; every problem is one line naming the key. */
export function parseEvolveYaml(text: string, file: string): EvolveRecipe {
  const document = parseDocument(text, { prettyErrors: false, uniqueKeys: true });
  const error = document.errors[0];
  if (error !== undefined) {
    const line = text.slice(0, error.pos[0]).split('\n').length;
    throw new InputError(file, `not valid YAML at line ${line}: ${error.message.split('\n')[0]}`);
  }
  const raw: unknown = document.toJS({ maxAliasCount: 100 });
  if (!isRecord(raw)) throw new InputError(file, 'expected a mapping with merge_method and models');
  const ranges = ranged(raw, file);
  if (ranges.length === 0) {
    throw new InputError(file, 'no parameter is a range, so there is nothing to search', {
      hint: `give a range such as weight: {min: 0, max: 1}, or make the merge as it stands: soup merge ${file} -o OUT`,
    });
  }
  const middle = parseMergeYaml(
    stringify(
      substitute(
        { raw, ranges },
        ranges.map((range) => (range.min + range.max) / 2),
      ),
    ),
    file,
  );
  // Each end of a range must be a value the method takes (density in (0, 1], ...).
  for (const range of ranges) {
    const def = middle.method.parameters[range.parameter];
    if (def === undefined) continue;
    for (const end of ['min', 'max'] as const) {
      const parsed = def.schema.safeParse(range[end]);
      if (!parsed.success) throw new InputError(file, `${range.path}.${end}: ${parsed.error.issues[0]?.message ?? 'is not valid'}`);
    }
  }
  return { file, raw, ranges, middle };
}

/** A candidate of the search: one value per range, and the recipe they make. */
export interface EvolveCandidate {
  values: number[];
  config: MergeConfig;
}

/**
 * Points of [0, 1]^n (clipped) mapped linearly onto the ranges; the search starts in the middle of
 * every range with a step of a third of it.
 */
export class RecipeSpace implements SearchSpace<EvolveCandidate> {
  readonly dimension: number;
  readonly start: number[];

  constructor(
    readonly recipe: EvolveRecipe,
    /** SHA-256 of the base (when there is one) and each model, for journal keys. */
    private readonly hashes: readonly string[],
    private readonly randomSeed: number,
    readonly sigma = 0.3,
  ) {
    this.dimension = recipe.ranges.length;
    this.start = new Array(this.dimension).fill(0.5);
  }

  valuesOf(point: Float64Array): number[] {
    return this.recipe.ranges.map((range, i) => range.min + (range.max - range.min) * Math.min(1, Math.max(0, point[i]!)));
  }

  decode(point: Float64Array): EvolveCandidate {
    const values = this.valuesOf(point);
    return { values, config: parseMergeYaml(stringify(substitute(this.recipe, values)), this.recipe.file) };
  }

  key(candidate: EvolveCandidate): string {
    // The recipe names models by path; the hashes say what those paths held.
    return sha256Text(JSON.stringify({ method: 'evolve', recipe: mergekitYaml(candidate.config), ingredients: this.hashes, randomSeed: this.randomSeed }));
  }

  label(candidate: EvolveCandidate): string {
    return this.recipe.ranges.map((range, i) => `${range.path}=${candidate.values[i]!.toFixed(3)}`).join(' ');
  }
}

/** The recipe found, as plain mergekit YAML: every range replaced by the value found. */
export function foundYaml(candidate: EvolveCandidate): string {
  return mergekitYaml(candidate.config);
}
