import { access, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { InputError, OutputError, UsageError, describeFsError } from '../../errors.js';
import type { Evaluator } from '../../eval/evaluator.js';
import { formatSeconds } from '../../report/format.js';
import { printGenerations } from '../../report/learned-search.js';
import { formatScore } from '../../recipe/scores.js';
import { searchPlot } from '../../report/search-plot.js';
import { Terminal } from '../../report/terminal.js';
import { describeDivergence, findDiverged, type Divergence } from '../../soup/diverged.js';
import { RecipeSpace, foundYaml, parseEvolveYaml, type EvolveRecipe } from '../../soup/strategies/evolve.js';
import { mergeFromConfig } from '../../soup/merge/engine.js';
import { readRecipeFile } from '../../soup/merge/config.js';
import { openMergeCheckpoints } from '../../soup/merge/inputs.js';
import { runSearch } from '../../soup/search/run.js';
import { isFolderOutput, prepareModelFiles, prepareOutput, writeSoup } from '../../soup/write.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { layerIndex } from '../merge-options.js';
import { commonOptions, parseOptions, soupOutputOptions } from '../options.js';
import { openSearchJournal, searchCommandArguments, searchJobs, objectiveDirection, searchObjective } from '../search-common.js';
import type { OpenedJournal } from '../../eval/score-cache.js';
import { MERGEKIT_CONFIG } from './merge.js';

const schema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend({
    evaluations: z.coerce.number().int().positive().default(200),
    population: z.coerce.number().int().min(2).optional(),
    seed: z.coerce.number().int().min(0).default(0),
    sigma: z.coerce.number().finite().positive().default(0.3),
    objective: z.string().min(1).optional(),
    scoreCache: z.string().min(1).optional(),
    plot: z.string().min(1).optional(),
    configOut: z.string().min(1).optional(),
    randomSeed: z.coerce.number().int().nonnegative().default(0),
    layerPattern: z.string().min(1).optional(),
  });

/** Where the recipe found goes: inside a folder output (as soup merge writes it), else beside the file. */
function configPath(output: string, folder: boolean, given: string | undefined): string {
  if (given !== undefined) return given;
  if (folder) return path.join(output, MERGEKIT_CONFIG);
  return `${output.replace(/\.(safetensors|onnx|pt|pth|bin)$/i, '')}.mergekit.yml`;
}

async function refuseExisting(file: string, flag: string, force: boolean): Promise<void> {
  if (force) return;
  const exists = await access(file).then(
    () => true,
    () => false,
  );
  if (exists) throw new UsageError(`${file} exists (${flag})`, { hint: 'pass --force to replace it, or name another file' });
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

/** Models with a NaN or infinite weight: left out of the search (they never take weight), named with the first bad tensor. */
async function divergedModels(models: readonly Checkpoint[], signal: AbortSignal): Promise<({ checkpoint: Checkpoint } & Divergence)[]> {
  return [...(await findDiverged(models, signal))].map(([checkpoint, found]) => ({ checkpoint, ...found }));
}

/** The recipe without the models listed at `paths` (as written in the recipe). */
function withoutModels(recipe: EvolveRecipe, paths: ReadonlySet<string>): EvolveRecipe {
  const raw = structuredClone(recipe.raw);
  raw.models = (raw.models as { model: string }[]).filter((entry) => !paths.has(entry.model));
  // JSON is YAML: the recipe is checked again exactly as when it was read.
  return parseEvolveYaml(JSON.stringify(raw), recipe.file);
}

export async function runEvolve(file: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  if (!/\.ya?ml$/i.test(file))
    throw new UsageError(`soup evolve reads a mergekit YAML recipe with ranges to search; ${file} is not a .yml file`, {
      hint: 'e.g. soup evolve ties-search.yml --val DATA -o OUT',
    });
  const text = await readRecipeFile(file);
  let recipe = parseEvolveYaml(text, file);
  let opened = await openMergeCheckpoints(recipe.middle, file);
  try {
    const diverged = await divergedModels(opened.models, signal);
    if (opened.base !== undefined && (await findDiverged([opened.base], signal)).size > 0) {
      throw new InputError(opened.base.path, 'the base model holds non-finite weights, so no merge from it can be scored');
    }
    if (diverged.length > 0) {
      for (const bad of diverged) terminal.warn(`${bad.checkpoint.name} diverged: ${describeDivergence(bad)}; left out of the search, it takes no weight`);
      const paths = new Set(diverged.map((bad) => recipe.middle.models[opened.models.indexOf(bad.checkpoint)]!.model));
      recipe = withoutModels(recipe, paths);
      await closeAll(opened.all);
      opened = await openMergeCheckpoints(recipe.middle, file);
    }
    const reference = opened.base ?? opened.models[0]!;
    const output = await prepareOutput([reference], {
      out: options.output,
      force: options.force,
      dtype: options.dtype,
      shardSize: options.outShardSize,
      protect: [...opened.all.flatMap((checkpoint) => [checkpoint.path, ...checkpoint.files]), options.model, options.val],
    });
    for (const warning of await prepareModelFiles(opened.base === undefined ? opened.models : [opened.base, ...opened.models], output, options))
      terminal.warn(warning);
    const folder = isFolderOutput(output.target);
    const configFile = configPath(options.output, folder, options.configOut);
    if (!folder || options.configOut !== undefined) await refuseExisting(configFile, 'the recipe found', options.force);
    if (options.plot !== undefined) await refuseExisting(options.plot, '--plot', options.force);
    const layers = layerIndex(
      options,
      reference.tensors().map((tensor) => tensor.name),
    );
    const progress = terminal.progress();
    const setup = await createEvaluator(options, reference, undefined, progress);
    for (const warning of setup.warnings ?? []) terminal.warn(warning);
    let evaluator: Evaluator = setup.evaluator;
    let journal: OpenedJournal | undefined;
    let found;
    try {
      const objective = searchObjective(setup.evaluator, options);
      if (options.scoreCache !== undefined) {
        journal = await openSearchJournal(setup, options.scoreCache, opened.all, terminal, signal);
        evaluator = journal.evaluator;
      }
      const space = new RecipeSpace(
        recipe,
        opened.all.map((checkpoint) => journal?.hashes.get(checkpoint) ?? ''),
        options.randomSeed,
        options.sigma,
      );
      const jobs = searchJobs(evaluator, options.jobs, terminal);
      const population = options.population ?? 4 + Math.floor(3 * Math.log(space.dimension));
      const outcome = await runSearch(
        space,
        async (candidate, evaluationSignal) => {
          const merge = mergeFromConfig(candidate.config, opened, { seed: options.randomSeed, layers, signal: evaluationSignal });
          try {
            return await evaluator.evaluate(merge.weights(), evaluationSignal);
          } catch (error) {
            // A merge that comes out non-finite for some values (a weight sum near 0) is the worst candidate, not the end of the search.
            if (error instanceof InputError && /merge gives/.test(error.message)) return { metrics: {} };
            throw error;
          }
        },
        {
          evaluations: options.evaluations,
          population,
          seed: options.seed,
          jobs,
          objective,
          direction: objectiveDirection(objective, options.metric, setup.direction),
          journal: journal === undefined ? undefined : { journal: journal.journal, evaluator: journal.key },
          signal,
          onProgress: progress,
        },
      );
      if (!Number.isFinite(outcome.metrics[objective] ?? Number.NaN)) {
        throw new InputError(file, 'no candidate could be scored (every merge came out non-finite)', {
          hint: 'narrow the ranges (a weight sum near 0 divides by almost nothing)',
        });
      }
      found = { outcome, objective, jobs, population };
    } finally {
      terminal.endProgress();
      await evaluator.dispose();
    }
    const { outcome, objective, jobs, population } = found;
    const best = outcome.best;
    const yaml = foundYaml(best);
    const values = Object.fromEntries(recipe.ranges.map((range, i) => [range.path, best.values[i]!]));
    const merge = mergeFromConfig(best.config, opened, { seed: options.randomSeed, layers, signal, onProgress: terminal.progress() });
    const chosen = opened.models.map((model) => model.name);
    const extraFiles = new Map<string, Uint8Array>();
    if (folder && options.configOut === undefined) extraFiles.set(MERGEKIT_CONFIG, new TextEncoder().encode(yaml));
    const search = { optimizer: 'CMA-ES', evaluations: options.evaluations, population, sigma: options.sigma, seed: options.seed, objective };
    const written = await writeSoup(
      opened.all,
      output,
      merge.producer(),
      {
        strategy: 'evolve',
        chosen,
        extra: {
          method: best.config.method.name,
          base: opened.base?.name ?? null,
          metric: options.metric,
          score: outcome.metrics[options.metric] ?? null,
          validation: setup.dataset?.path ?? options.evalCmd,
          ranges: recipe.ranges.map(({ path: at, min, max }) => ({ path: at, min, max })),
          found: values,
          search,
          randomSeed: options.randomSeed,
          mergekit: yaml,
          ...(diverged.length === 0 ? {} : { diverged: diverged.map((bad) => ({ name: bad.checkpoint.name, tensor: bad.tensor })) }),
        },
        command: searchCommandArguments(),
      },
      signal,
      extraFiles,
    );
    terminal.endProgress();
    if (!folder || options.configOut !== undefined) await writeText(configFile, yaml);
    if (options.plot !== undefined)
      await writeText(options.plot, searchPlot(outcome.generations, `soup evolve: ${best.config.method.name} on ${path.basename(file)}`, objective));
    const seconds = (performance.now() - started) / 1000;
    const document = {
      strategy: 'evolve',
      method: best.config.method.name,
      base: opened.base === undefined ? null : { name: opened.base.name, path: opened.base.path },
      metric: options.metric,
      objective,
      backend: setup.backend,
      jobs,
      ingredients: opened.models.map((model) => ({ name: model.name, path: model.path })),
      chosen,
      score: outcome.metrics[options.metric] ?? null,
      metrics: outcome.metrics,
      startMetrics: outcome.startMetrics,
      ranges: recipe.ranges.map(({ path: at, min, max }) => ({ path: at, min, max })),
      found: values,
      recipe: yaml,
      recipeFile: configFile,
      hyperparameters: search,
      generations: outcome.generations,
      evaluations: outcome.evaluations,
      evaluatorCalls: outcome.evaluatorCalls,
      evaluationsFromCache: outcome.evaluations - outcome.evaluatorCalls,
      evaluationsPerSecond: Number((outcome.evaluations / Math.max(outcome.seconds, 1e-9)).toFixed(2)),
      diverged: diverged.map((bad) => ({ name: bad.checkpoint.name, path: bad.checkpoint.path, tensor: bad.tensor, element: bad.element, value: bad.value })),
      output: written.path,
      plot: options.plot ?? null,
      seconds: Number(seconds.toFixed(3)),
      warnings: terminal.warnings,
    };
    if (terminal.json) {
      terminal.printJson(document);
      return;
    }
    const { paint } = terminal;
    const source = setup.dataset === undefined ? `\`${options.evalCmd}\`` : `${setup.dataset.name} (${setup.dataset.n} samples)`;
    terminal.print(
      `${paint.bold(`Evolved merge (${best.config.method.name})`)} of ${chosen.length} ingredients: ${recipe.ranges.length} values searched by CMA-ES, ${objective} on ${source}, ${setup.evaluator.description}`,
    );
    terminal.print(
      `population ${population}, seed ${options.seed}; ${outcome.evaluations} evaluations (${document.evaluationsFromCache} from the score cache), ${document.evaluationsPerSecond} per second`,
    );
    terminal.print();
    printGenerations(terminal, outcome.generations, objective);
    terminal.print();
    terminal.print('Values found:');
    for (const [i, range] of recipe.ranges.entries()) terminal.print(`  ${range.path}  ${best.values[i]!.toFixed(4)}  (${range.min} .. ${range.max})`);
    terminal.print();
    const startScore = outcome.startMetrics[options.metric];
    terminal.print(
      `Score:  ${paint.bold(formatScore(outcome.metrics[options.metric] ?? Number.NaN))} ${options.metric} (middle of every range ${formatScore(startScore ?? Number.NaN)})`,
    );
    terminal.print(
      `Wrote:  ${paint.cyan(written.path)} (${output.target.kind}) in ${formatSeconds(seconds)}; the recipe found: ${configFile} (soup merge ${configFile} -o OUT makes it again)`,
    );
    if (options.plot !== undefined) terminal.print(`Plot:   ${options.plot}`);
  } finally {
    await closeAll(opened.all);
  }
}
