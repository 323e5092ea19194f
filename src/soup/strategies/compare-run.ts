/**
 * `soup compare` as a library call: builds an evaluator per data set, scores the ingredients, the
 * soups, the ensemble and the --merge recipes, writes the soups --save-dir keeps, checks the gates,
 * and returns the --json document.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import { type EvaluationOptions, createEvaluator } from '../../eval/create.js';
import type { Evaluator } from '../../eval/evaluator.js';
import type { Direction } from '../../eval/metrics.js';
import { scoreIngredients } from '../../eval/pool.js';
import type { SlurmJobRecord } from '../../eval/slurm.js';
import type { ProgressListener } from '../../progress.js';
import { scanDiverged } from '../diverged.js';
import { type CompareDataset, compareSoups } from './compare.js';
import type { CompareDocument } from './compare-document.js';
import { scoreMerge } from './compare-merge.js';
import { type ComparePlan, VALIDATION } from './compare-plan.js';
import { prepareSaves, writeSaves } from './compare-save.js';
import { checkGates, type Gates } from './gates.js';

export interface ComparisonOptions extends EvaluationOptions, Omit<Gates, 'baseline'> {
  acceptTies: boolean;
  allowNonFinite: boolean;
  /** --save-dir: where the uniform and greedy soups are written (not written without it). */
  saveDir?: string | undefined;
  force: boolean;
  /** The arguments that made the soups, for their recipes. */
  command: readonly string[];
  /** Things the user should know that do not stop the comparison, each told once. */
  warn: (message: string) => void;
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

export interface Comparison {
  document: CompareDocument;
  /** The validation set's evaluator in words ("tfjs (wasm)", "command: ..."), for the summary. */
  evaluator: string;
}

/** Compares the opened ingredients on the plan's data sets; the caller opens and closes the checkpoints. */
export async function runComparison(checkpoints: readonly Checkpoint[], plan: ComparePlan, options: ComparisonOptions): Promise<Comparison> {
  const { metric, signal, onProgress } = options;
  const reference = checkpoints[0]!;
  const evaluators: Evaluator[] = [];
  const slurmJobs: SlurmJobRecord[][] = [];
  try {
    const saves =
      options.saveDir === undefined
        ? undefined
        : await prepareSaves(options.saveDir, options.force, checkpoints, [options.model, options.val, ...plan.tests.map((test) => test.data)]);
    const warned = new Set(saves?.warnings);
    for (const warning of warned) options.warn(warning);
    const datasets: CompareDataset[] = [];
    let backend = '';
    let direction: Direction = 'maximize';
    for (const { name, data } of [{ name: VALIDATION, data: options.val }, ...plan.tests]) {
      const setup = await createEvaluator(options, reference, data, onProgress);
      // The model's warnings repeat for every data set; a data set's own (raw pixels) are new.
      for (const warning of setup.warnings ?? []) {
        if (warned.has(warning)) continue;
        warned.add(warning);
        options.warn(warning);
      }
      evaluators.push(setup.evaluator);
      if (setup.slurm !== undefined) slurmJobs.push(setup.slurm.records);
      datasets.push({ name, evaluator: setup.evaluator });
      backend = setup.backend;
      direction = setup.direction;
    }
    const baseline = plan.baseline;
    if (baseline?.document.direction !== undefined && baseline.document.direction !== direction) {
      throw new UsageError(`the baseline ${baseline.file} ranks ${baseline.document.metric} with ${baseline.document.direction}, this run with ${direction}`, {
        hint: `pass --${baseline.document.direction}`,
      });
    }
    // --eval-cmd gives no outputs to average, so there is no ensemble to leave a run out of.
    const ensemble = datasets.every(({ evaluator }) => evaluator.predict !== undefined && evaluator.scoreOutputs !== undefined);
    const leftOutOf = ensemble ? 'the soups and the ensemble' : 'the soups';
    const diverged = await scanDiverged(checkpoints, { allowNonFinite: options.allowNonFinite, leftOutOf }, options.warn, signal);
    const result = await compareSoups(checkpoints, datasets, {
      metric,
      direction,
      diverged,
      acceptTies: options.acceptTies,
      allowNonFinite: options.allowNonFinite,
      signal,
      onProgress,
      scoreAll: async (ingredients, evaluator) =>
        (await scoreIngredients(ingredients, evaluator, undefined, { metric, jobs: options.jobs, allowNonFinite: true, signal })).scores,
    });
    for (const merge of plan.merges) {
      result.rows.push(await scoreMerge(merge, reference, datasets, { metric, allowNonFinite: options.allowNonFinite, signal, onProgress }));
    }
    const saved =
      saves === undefined ? {} : await writeSaves(checkpoints, saves.targets, result, { metric, direction, diverged, command: options.command, signal });

    const document: CompareDocument = { metric, direction, backend, datasets: result.datasets, rows: result.rows, notes: result.notes };
    const gates = checkGates(document, {
      failUnder: options.failUnder,
      baseline: baseline?.document,
      maxDrop: options.maxDrop,
      requireGreedyBeatsBest: options.requireGreedyBeatsBest,
    });
    if (gates.length > 0) document.gates = gates;
    if (Object.keys(saved).length > 0) document.saved = saved;
    if (slurmJobs.length > 0) document.slurmJobs = slurmJobs.flat();
    return { document, evaluator: datasets[0]!.evaluator.description };
  } finally {
    await Promise.allSettled(evaluators.map((evaluator) => evaluator.dispose()));
  }
}
