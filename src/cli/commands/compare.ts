import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { fileSuffixOf } from '../../checkpoint/formats.js';
import type { Evaluator } from '../../eval/evaluator.js';
import { scoreIngredients } from '../../eval/pool.js';
import { candidateProducer } from '../../weights/candidate.js';
import { GateError, InputError, UsageError, describeFsError } from '../../errors.js';
import { compareSoups, scoreMergeRow, type CompareDataset, type CompareRow } from '../../soup/strategies/compare.js';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import { IncompatibleError } from '../../errors.js';
import { mergeFromConfig } from '../../soup/merge/engine.js';
import { parseMergeYaml, type MergeConfig } from '../../soup/merge/config.js';
import { openMergeCheckpoints } from '../../soup/merge/inputs.js';
import { LayerIndex } from '../../soup/merge/methods/parameters.js';
import type { ProgressListener } from '../../progress.js';
import type { SlurmJobRecord } from '../../eval/slurm.js';
import { compareDocumentSchema, type CompareDocument } from '../../soup/strategies/compare-document.js';
import { checkGates } from '../../soup/strategies/gates.js';
import { openIngredients } from '../../soup/ingredients.js';
import { prepareModelFiles, prepareOutput, writeSoup, type PreparedOutput } from '../../soup/write.js';
import { compareMarkdown, compareTable } from '../../report/compare.js';
import { writeReport } from '../../report/output.js';
import { comparePlot } from '../../report/plot.js';
import { Terminal } from '../../report/terminal.js';
import { scanDiverged } from '../diverged.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { describeDirection, type Direction } from '../../eval/metrics.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  test: z.array(z.string()).default([]),
  acceptTies: z.boolean().default(false),
  allowNonfinite: z.boolean().default(false),
  allowFused: z.boolean().default(false),
  saveDir: z.string().min(1).optional(),
  force: z.boolean().default(false),
  markdown: z.string().min(1).optional(),
  plot: z.string().min(1).optional(),
  failUnder: z.coerce.number().finite().optional(),
  baseline: z.string().min(1).optional(),
  maxDrop: z.coerce.number().nonnegative().optional(),
  requireGreedyBeatsBest: z.boolean().default(false),
  merge: z.array(z.string()).default([]),
});

/** The column name of the validation set, stable across runs so that baselines line up. */
const VALIDATION = 'val';

/** `--test NAME=DATA`, or `--test DATA` named after the file or folder. */
function parseTests(specs: string[]): { name: string; data: string }[] {
  const tests = specs.map((spec) => {
    const match = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(spec);
    if (match !== null) return { name: match[1]!, data: match[2]! };
    return { name: path.basename(spec).replace(/\.[^.]+$/, ''), data: spec };
  });
  const names = [VALIDATION, ...tests.map((t) => t.name)];
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new UsageError(`two data sets are named "${duplicate}"`, { hint: 'name them with --test NAME=DATA' });
  return tests;
}

async function readBaseline(file: string): Promise<CompareDocument> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new InputError(file, `cannot read the baseline: ${describeFsError(error)}`, { cause: error });
  });
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new InputError(file, `the baseline is not JSON (${(error as Error).message}); it should be the output of soup compare --json`);
  }
  const parsed = compareDocumentSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(file, `not a soup compare --json document: ${issue.path.join('.') || 'top level'}: ${issue.message}`);
  }
  return parsed.data;
}

export async function runCompare(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const tests = parseTests(options.test);
  if (options.maxDrop !== undefined && options.baseline === undefined) throw new UsageError('--max-drop needs --baseline previous.json');
  const baseline = options.baseline === undefined ? undefined : await readBaseline(options.baseline);
  if (baseline !== undefined && baseline.metric !== options.metric) {
    throw new UsageError(`the baseline ${options.baseline} compares ${baseline.metric}, this run ${options.metric}`, {
      hint: `pass --metric ${baseline.metric}`,
    });
  }
  // Recipes are checked before any scoring, so a typo in one does not cost a whole comparison.
  const merges = await Promise.all(options.merge.map(async (file) => ({ file, config: await readMergeRecipe(file) })));
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  const evaluators: Evaluator[] = [];
  const slurmJobs: SlurmJobRecord[][] = [];
  try {
    const reference = checkpoints[0]!;
    const saveTargets =
      options.saveDir === undefined
        ? undefined
        : await prepareSaves(options.saveDir, options.force, checkpoints, [options.model, options.val, ...tests.map((test) => test.data)]);
    const warnings = new Set<string>();
    for (const output of Object.values(saveTargets ?? {})) for (const warning of await prepareModelFiles(checkpoints, output)) warnings.add(warning);
    for (const warning of warnings) terminal.warn(warning);
    const datasets: CompareDataset[] = [];
    let backend = '';
    let direction: Direction = 'maximize';
    for (const { name, data } of [{ name: VALIDATION, data: options.val }, ...tests]) {
      const setup = await createEvaluator(options, reference, data, terminal.progress());
      // The model's warnings repeat for every data set; a data set's own (raw pixels) are new.
      for (const warning of setup.warnings ?? []) {
        if (warnings.has(warning)) continue;
        warnings.add(warning);
        terminal.warn(warning);
      }
      evaluators.push(setup.evaluator);
      if (setup.slurm !== undefined) slurmJobs.push(setup.slurm.records);
      datasets.push({ name, evaluator: setup.evaluator });
      backend = setup.backend;
      direction = setup.direction;
    }
    if (baseline?.direction !== undefined && baseline.direction !== direction) {
      throw new UsageError(`the baseline ${options.baseline} ranks ${baseline.metric} with ${baseline.direction}, this run with ${direction}`, {
        hint: `pass --${baseline.direction}`,
      });
    }
    // --eval-cmd gives no outputs to average, so there is no ensemble to leave a run out of.
    const ensemble = datasets.every(({ evaluator }) => evaluator.predict !== undefined && evaluator.scoreOutputs !== undefined);
    const diverged = await scanDiverged(
      checkpoints,
      { allowNonfinite: options.allowNonfinite, leftOutOf: ensemble ? 'the soups and the ensemble' : 'the soups' },
      terminal,
      signal,
    );
    const result = await compareSoups(checkpoints, datasets, {
      metric: options.metric,
      direction,
      diverged,
      acceptTies: options.acceptTies,
      allowNonFinite: options.allowNonfinite,
      signal,
      onProgress: terminal.progress(),
      scoreAll: async (ingredients, evaluator) =>
        (await scoreIngredients(ingredients, evaluator, undefined, { metric: options.metric, jobs: options.jobs, allowNonFinite: true, signal })).scores,
    });
    for (const { file, config } of merges) {
      result.rows.push(
        await scoreMerge(file, config, reference, datasets, {
          metric: options.metric,
          allowNonFinite: options.allowNonfinite,
          signal,
          onProgress: terminal.progress(),
        }),
      );
    }
    terminal.endProgress();

    const saved: Record<string, string> = {};
    if (saveTargets !== undefined) {
      const names = checkpoints.filter((c) => !diverged.has(c)).map((c) => c.name);
      const soups = [
        { kind: 'uniform', output: saveTargets.uniform, weights: result.uniform.weights(), chosen: names },
        { kind: 'greedy', output: saveTargets.greedy, weights: result.greedy.soup.weights(), chosen: result.greedy.soup.chosen.map((c) => c.name) },
      ];
      for (const soup of soups) {
        const written = await writeSoup(
          checkpoints,
          soup.output,
          candidateProducer(soup.weights),
          {
            strategy: soup.kind,
            chosen: soup.chosen,
            scores: result.greedy.scores,
            extra: {
              metric: options.metric,
              direction,
              scores: result.rows.find((row) => row.kind === soup.kind)?.scores,
              ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
            },
            command: commandArguments(),
          },
          signal,
        );
        saved[soup.kind] = written.path;
      }
    }

    const document: CompareDocument = { metric: options.metric, direction, backend, datasets: result.datasets, rows: result.rows, notes: result.notes };
    const gates = checkGates(document, {
      failUnder: options.failUnder,
      baseline,
      maxDrop: options.maxDrop,
      requireGreedyBeatsBest: options.requireGreedyBeatsBest,
    });
    if (gates.length > 0) document.gates = gates;
    if (Object.keys(saved).length > 0) document.saved = saved;
    if (slurmJobs.length > 0) document.slurmJobs = slurmJobs.flat();
    if (options.markdown !== undefined) await writeReport(options.markdown, compareMarkdown(document));
    if (options.plot !== undefined) await writeReport(options.plot, comparePlot(document));

    if (terminal.json) {
      terminal.printJson(document);
    } else {
      const { paint } = terminal;
      terminal.print(
        `${paint.bold('Comparison')} of ${checkpoints.length} ingredients, ${options.metric} (${describeDirection(direction)}), ${datasets[0]!.evaluator.description}`,
      );
      terminal.print();
      for (const line of compareTable(document, paint)) terminal.print(`  ${line}`);
      terminal.print();
      terminal.print(
        `* best of its column (${describeDirection(direction)}). The greedy soup was chosen on ${VALIDATION} only: ${result.greedy.soup.chosen.map((c) => c.name).join(', ')}.`,
      );
      for (const note of result.notes) terminal.print(`Note: ${note}.`);
      for (const [kind, file] of Object.entries(saved)) terminal.print(`Saved the ${kind} soup to ${paint.cyan(file)}.`);
      if (options.markdown !== undefined) terminal.print(`Markdown report: ${options.markdown}`);
      if (options.plot !== undefined) terminal.print(`Plot: ${options.plot}`);
      for (const gate of gates) terminal.print(`${gate.passed ? paint.green('PASS') : paint.red('FAIL')} ${gate.gate}: ${gate.detail}`);
    }
    const failed = gates.filter((gate) => !gate.passed);
    if (failed.length > 0)
      throw new GateError(`${failed.length} gate${failed.length > 1 ? 's' : ''} failed: ${failed.map((g) => `${g.gate} (${g.detail})`).join('; ')}`);
  } finally {
    terminal.endProgress();
    await Promise.allSettled(evaluators.map((evaluator) => evaluator.dispose()));
    await closeAll(checkpoints);
  }
}

/** Where --save-dir puts the soups: uniform-soup and greedy-soup, in the ingredients' format. */
async function prepareSaves(
  dir: string,
  force: boolean,
  checkpoints: readonly Checkpoint[],
  protect: readonly (string | undefined)[],
): Promise<Record<'uniform' | 'greedy', PreparedOutput>> {
  const suffix = fileSuffixOf(checkpoints[0]!);
  await mkdir(dir, { recursive: true }).catch((error: unknown) => {
    throw new UsageError(`--save-dir ${dir}: cannot create it: ${describeFsError(error)}`);
  });
  return {
    uniform: await prepareOutput(checkpoints, { out: path.join(dir, `uniform-soup${suffix}`), force, protect }),
    greedy: await prepareOutput(checkpoints, { out: path.join(dir, `greedy-soup${suffix}`), force, protect }),
  };
}

async function readMergeRecipe(file: string): Promise<MergeConfig> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new InputError(file, `--merge: ${describeFsError(error)}`, { cause: error });
  });
  return parseMergeYaml(text, file);
}

/** Scores one --merge recipe's result on every data set; its models must be the compared model's shape. */
async function scoreMerge(
  file: string,
  config: MergeConfig,
  reference: Checkpoint,
  datasets: readonly CompareDataset[],
  options: { metric: string; allowNonFinite: boolean; signal: AbortSignal; onProgress: ProgressListener },
): Promise<CompareRow> {
  const opened = await openMergeCheckpoints(config, file);
  try {
    const problems = findIncompatibilities([reference, ...opened.all]);
    if (problems.length > 0) throw new IncompatibleError(problems.map((problem) => `--merge ${file}: ${problem}`));
    const merge = mergeFromConfig(config, opened, {
      seed: 0,
      layers: new LayerIndex(reference.tensors().map((tensor) => tensor.name)),
      allowNonFinite: options.allowNonFinite,
      signal: options.signal,
    });
    const name = `${config.method.name} (${path.basename(file)})`;
    return await scoreMergeRow(
      name,
      merge.weights(),
      opened.models.map((model) => model.name),
      datasets,
      options,
    );
  } finally {
    await closeAll(opened.all);
  }
}
