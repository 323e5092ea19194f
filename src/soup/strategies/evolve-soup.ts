/**
 * `soup evolve`: a mergekit recipe with ranges, its models opened (diverged ones left out), CMA-ES
 * over the ranges on any evaluator, and the best merge it scored, with the plain recipe that makes
 * it again, its recipe record and --json document.
 */
import { access, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { closeAll } from '../../checkpoint/discover.js';
import { InputError, OutputError, UsageError, describeFsError } from '../../errors.js';
import type { Evaluation, Evaluator } from '../../eval/evaluator.js';
import { findDiverged, describeDivergence, type Divergence } from '../diverged.js';
import { readRecipeFile } from '../merge/config.js';
import { mergeFromConfig } from '../merge/engine.js';
import { openMergeCheckpoints, type MergeCheckpoints } from '../merge/inputs.js';
import type { LayerIndex } from '../merge/methods/parameters.js';
import { MERGEKIT_CONFIG } from './merge.js';
import { scoringReference } from '../../eval/create.js';
import type { GenerationRecord } from '../search/run.js';
import { searchCounts, searchJobs, withSearchScoring, type SearchEvaluationOptions, type SearchHooks } from '../search/session.js';
import { isFolderOutput, type PreparedOutput, type SoupOutcome } from '../write.js';
import { RecipeSpace, foundYaml, parseEvolveYaml, type EvolveCandidate, type EvolveRecipe } from './evolve.js';
import type { ScoredWith } from './learned-soup.js';

/** A model left out of the search for its non-finite weights, with the first bad value. */
export interface DivergedModel extends Divergence {
  name: string;
  path: string;
}

/** The --json document of `soup evolve`; the merge's path goes before plot, the time and the warnings after it. */
export interface EvolveDocument {
  strategy: 'evolve';
  method: string;
  base: { name: string; path: string } | null;
  metric: string;
  objective: string;
  backend: string;
  jobs: number;
  ingredients: { name: string; path: string }[];
  chosen: string[];
  score: number | null;
  metrics: Record<string, number>;
  startMetrics: Record<string, number>;
  ranges: { path: string; min: number; max: number }[];
  /** {range path: value found}. */
  found: Record<string, number>;
  /** The recipe found, as plain mergekit YAML, and where it is written. */
  recipe: string;
  recipeFile: string;
  hyperparameters: { optimizer: 'CMA-ES'; evaluations: number; population: number; sigma: number; seed: number; objective: string };
  generations: GenerationRecord[];
  evaluations: number;
  evaluatorCalls: number;
  evaluationsFromCache: number;
  evaluationsPerSecond: number;
  diverged: DivergedModel[];
  plot: string | null;
}

/** The recipe and the models it names, opened; models that diverged are out of both. */
export interface EvolveInputs {
  recipe: EvolveRecipe;
  opened: MergeCheckpoints;
  diverged: DivergedModel[];
}

/** The recipe without the models listed at `paths` (as written in the recipe). */
function withoutModels(recipe: EvolveRecipe, paths: ReadonlySet<string>): EvolveRecipe {
  const raw = structuredClone(recipe.raw);
  raw.models = (raw.models as { model: string }[]).filter((entry) => !paths.has(entry.model));
  // JSON is YAML: the recipe is checked again exactly as when it was read.
  return parseEvolveYaml(JSON.stringify(raw), recipe.file);
}

/**
 * Reads the recipe and opens its models. Models with a NaN or infinite weight are left out of the
 * search (they would never take weight), each announced through `warn`; a diverged base is refused.
 * The caller closes `opened.all`.
 */
export async function openEvolveRecipe(file: string, options: { warn(message: string): void; signal: AbortSignal }): Promise<EvolveInputs> {
  if (!/\.ya?ml$/i.test(file))
    throw new UsageError(`soup evolve reads a mergekit YAML recipe with ranges to search; ${file} is not a .yml file`, {
      hint: 'e.g. soup evolve ties-search.yml --val DATA -o OUT',
    });
  let recipe = parseEvolveYaml(await readRecipeFile(file), file);
  let opened = await openMergeCheckpoints(recipe.middle, file);
  try {
    const diverged = [...(await findDiverged(opened.models, options.signal))].map(([checkpoint, found]) => ({ checkpoint, ...found }));
    if (opened.base !== undefined && (await findDiverged([opened.base], options.signal)).size > 0) {
      throw new InputError(opened.base.path, 'the base model holds non-finite weights, so no merge from it can be scored');
    }
    if (diverged.length > 0) {
      for (const bad of diverged) options.warn(`${bad.checkpoint.name} diverged: ${describeDivergence(bad)}; left out of the search, it takes no weight`);
      const paths = new Set(diverged.map((bad) => recipe.middle.models[opened.models.indexOf(bad.checkpoint)]!.model));
      recipe = withoutModels(recipe, paths);
      await closeAll(opened.all);
      opened = await openMergeCheckpoints(recipe.middle, file);
    }
    const named = diverged.map(({ checkpoint, tensor, element, value }) => ({ name: checkpoint.name, path: checkpoint.path, tensor, element, value }));
    return { recipe, opened, diverged: named };
  } catch (error) {
    await closeAll(opened.all);
    throw error;
  }
}

/** Where the recipe found and the plot go, checked before the search. */
export interface EvolveFiles {
  /** The recipe found: inside a folder output (as soup merge writes it), else beside the file, or --config-out. */
  recipeFile: string;
  /** Whether the recipe is written into the folder output with the soup, rather than on its own. */
  inOutput: boolean;
  plot?: string | undefined;
}

async function refuseExisting(file: string, flag: string, force: boolean): Promise<void> {
  if (force) return;
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (exists) throw new UsageError(`${file} exists (${flag})`, { hint: 'pass --force to replace it, or name another file' });
}

/** Decides where the recipe found and the plot go, and refuses to replace either without `force`. */
export async function prepareEvolveFiles(
  output: PreparedOutput,
  options: { out: string; configOut?: string | undefined; plot?: string | undefined; force: boolean },
): Promise<EvolveFiles> {
  const folder = isFolderOutput(output.target);
  const inOutput = folder && options.configOut === undefined;
  const recipeFile =
    options.configOut ?? (folder ? path.join(options.out, MERGEKIT_CONFIG) : `${options.out.replace(/\.(safetensors|onnx|pt|pth|bin)$/i, '')}.mergekit.yml`);
  if (!inOutput) await refuseExisting(recipeFile, 'the recipe found', options.force);
  if (options.plot !== undefined) await refuseExisting(options.plot, '--plot', options.force);
  return { recipeFile, inOutput, plot: options.plot };
}

export interface EvolveOptions extends SearchHooks {
  evaluation: SearchEvaluationOptions;
  settings: { evaluations: number; population?: number | undefined; seed: number; sigma: number; randomSeed: number };
  /** Where the layer index is in a tensor name (--layer-pattern), for gradients over layers. */
  layers: LayerIndex;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
}

export interface EvolveOutcome extends SoupOutcome<EvolveDocument> {
  /** Files the folder output holds beside the weights: the recipe found, when it goes there. */
  moreFiles: Map<string, Uint8Array>;
  files: EvolveFiles;
  scoredWith: ScoredWith;
}

/** Scores one candidate; a merge that comes out non-finite for some values (a weight sum near 0) is the worst candidate, not the end of the search. */
async function scoreMerge(
  inputs: EvolveInputs,
  candidate: EvolveCandidate,
  evaluator: Evaluator,
  options: EvolveOptions,
  signal: AbortSignal,
): Promise<Evaluation> {
  const merge = mergeFromConfig(candidate.config, inputs.opened, { seed: options.settings.randomSeed, layers: options.layers, signal });
  try {
    return await evaluator.evaluate(merge.weights(), signal);
  } catch (error) {
    if (error instanceof InputError && /merge gives/.test(error.message)) return { metrics: {} };
    throw error;
  }
}

/** Searches the recipe's ranges by CMA-ES and returns the best merge it scored. */
export async function evolveSoup(inputs: EvolveInputs, files: EvolveFiles, options: EvolveOptions): Promise<EvolveOutcome> {
  const { recipe, opened, diverged } = inputs;
  const { evaluation, settings, signal } = options;
  const reference = scoringReference(evaluation, opened.base === undefined ? opened.models : [opened.base, ...opened.models]);
  const found = await withSearchScoring(evaluation, reference, opened.all, options, async (scoring) => {
    const space = new RecipeSpace(recipe, opened.all.map(scoring.hashOf), settings.randomSeed, settings.sigma);
    const jobs = searchJobs(scoring.evaluator, evaluation.jobs, options.warn);
    const searched = await scoring.search(
      space,
      (candidate, evaluator, evaluationSignal) => scoreMerge(inputs, candidate, evaluator, options, evaluationSignal),
      {
        evaluations: settings.evaluations,
        population: settings.population,
        seed: settings.seed,
        jobs,
      },
    );
    if (!Number.isFinite(searched.outcome.metrics[scoring.objective] ?? Number.NaN)) {
      throw new InputError(recipe.file, 'no candidate could be scored (every merge came out non-finite)', {
        hint: 'narrow the ranges (a weight sum near 0 divides by almost nothing)',
      });
    }
    return { ...searched, objective: scoring.objective, jobs, setup: scoring.setup };
  });
  const { outcome, objective, jobs, population, setup } = found;
  const best = outcome.best;
  const yaml = foundYaml(best);
  const values = Object.fromEntries(recipe.ranges.map((range, i) => [range.path, best.values[i]!]));
  const merge = mergeFromConfig(best.config, opened, { seed: settings.randomSeed, layers: options.layers, signal, onProgress: options.onProgress });
  const chosen = opened.models.map((model) => model.name);
  const ranges = recipe.ranges.map(({ path: at, min, max }) => ({ path: at, min, max }));
  const search = { optimizer: 'CMA-ES' as const, evaluations: settings.evaluations, population, sigma: settings.sigma, seed: settings.seed, objective };
  return {
    producer: merge.producer(),
    record: {
      strategy: 'evolve',
      chosen,
      extra: {
        method: best.config.method.name,
        base: opened.base?.name ?? null,
        metric: evaluation.metric,
        score: outcome.metrics[evaluation.metric] ?? null,
        validation: setup.dataset?.path ?? evaluation.evalCmd,
        ranges,
        found: values,
        search,
        randomSeed: settings.randomSeed,
        mergekit: yaml,
        ...(diverged.length === 0 ? {} : { diverged: diverged.map((bad) => ({ name: bad.name, tensor: bad.tensor })) }),
      },
      command: options.command,
    },
    document: {
      strategy: 'evolve',
      method: best.config.method.name,
      base: opened.base === undefined ? null : { name: opened.base.name, path: opened.base.path },
      metric: evaluation.metric,
      objective,
      backend: setup.backend,
      jobs,
      ingredients: opened.models.map((model) => ({ name: model.name, path: model.path })),
      chosen,
      score: outcome.metrics[evaluation.metric] ?? null,
      metrics: outcome.metrics,
      startMetrics: outcome.startMetrics,
      ranges,
      found: values,
      recipe: yaml,
      recipeFile: files.recipeFile,
      hyperparameters: search,
      generations: outcome.generations,
      evaluations: outcome.evaluations,
      ...searchCounts(outcome),
      diverged,
      plot: files.plot ?? null,
    },
    moreFiles: files.inOutput ? new Map([[path.basename(files.recipeFile), new TextEncoder().encode(yaml)]]) : new Map(),
    files,
    scoredWith: { evaluator: setup.evaluator.description, dataset: setup.dataset },
  };
}

async function writeText(file: string, text: string): Promise<void> {
  const temp = `${file}.tmp-${process.pid}`;
  try {
    await writeFile(temp, text);
    await rename(temp, file);
  } catch (error) {
    throw new OutputError(file, `cannot write: ${describeFsError(error)}`, { cause: error });
  }
}

/** Once the merge is in place: the recipe found (unless the folder output holds it), and the plot drawn of the search. */
export async function writeEvolveFiles(made: EvolveOutcome, plot: string | undefined): Promise<void> {
  if (!made.files.inOutput) await writeText(made.files.recipeFile, made.document.recipe);
  if (made.files.plot !== undefined && plot !== undefined) await writeText(made.files.plot, plot);
}
