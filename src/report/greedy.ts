import { byScore, describeDirection, higherIsBetter } from '../eval/metrics.js';
import { describeDivergence } from '../soup/diverged.js';
import { compareNatural } from '../natural-order.js';
import type { SlurmJobRecord } from '../eval/slurm.js';
import type { GreedyDocument, GreedyMade } from '../soup/strategies/greedy-document.js';
import type { GreedyOutcome } from '../soup/strategies/greedy-soup.js';
import { describeScoredData } from './data-source.js';
import { formatSeconds, table } from './format.js';
import { formatScore } from '../recipe/scores.js';
import type { Terminal } from './terminal.js';

/** What `soup greedy` made: the --json document (its keys in their documented order), or the steps for people. */
export function renderGreedy(
  terminal: Terminal,
  made: GreedyOutcome,
  written: { path: string; seconds: number; modelFiles: string | undefined; scoreCache: string | undefined },
): void {
  const document = greedyDocument(made.document, written.path, written.seconds, terminal.warnings);
  if (terminal.json) terminal.printJson(document);
  else {
    const { evaluator, dataset, val, format } = made.about;
    printGreedy(terminal, document, {
      evaluator,
      source: describeScoredData(dataset, val),
      format,
      scoreCache: written.scoreCache,
      modelFiles: written.modelFiles,
    });
  }
}

function greedyDocument(made: GreedyMade, output: string, seconds: number, warnings: string[]): GreedyDocument {
  const { strategy, method, base, metric, direction, backend, jobs, ingredients, steps, chosen, leftOut, score } = made;
  const { evaluations, evaluationsFromCache, evaluationsWasted, slurmJobs, samples, samplesScored, samplesSaved } = made;
  return {
    strategy,
    ...(method === undefined ? {} : { method }),
    ...(base === undefined ? {} : { base }),
    metric,
    direction,
    backend,
    jobs,
    ingredients,
    steps,
    chosen,
    leftOut,
    score,
    output,
    evaluations,
    evaluationsFromCache,
    ...(evaluationsWasted === undefined ? {} : { evaluationsWasted }),
    ...(slurmJobs === undefined ? {} : { slurmJobs }),
    samples,
    samplesScored,
    samplesSaved,
    seconds: Number(seconds.toFixed(3)),
    warnings,
  };
}

/** The greedy soup for a person: ingredients best first, each step with its change, the outcome. */
function printGreedy(
  terminal: Terminal,
  doc: GreedyDocument,
  about: { source: string; evaluator: string; format: string; scoreCache?: string | undefined; modelFiles?: string | undefined },
): void {
  const { paint } = terminal;
  const higher = higherIsBetter(doc.direction);
  const rank = byScore(doc.direction);
  const ranked = [...doc.ingredients].sort(
    (a, b) => Number(a.diverged !== undefined) - Number(b.diverged !== undefined) || rank(a.score, b.score) || compareNatural(a.name, b.name),
  );
  const best = ranked[0]!;
  const metric = `${doc.metric} (${describeDirection(doc.direction)})`;
  terminal.print(
    `${paint.bold(doc.method === undefined ? 'Greedy soup' : `Greedy ${doc.method} merge`)} of ${doc.ingredients.length} ingredients, ${metric} on ${about.source}, ${about.evaluator}`,
  );
  terminal.print();
  terminal.print(`Ingredients, best first (${describeDirection(doc.direction)}):`);
  const ingredientRows = ranked.map((i) => [
    i.name,
    formatScore(i.score),
    i.diverged === undefined ? '' : paint.yellow(`diverged: ${describeDivergence(i.diverged)}`),
  ]);
  for (const line of table(ingredientRows, [false, true, false])) terminal.print(`  ${line.trimEnd()}`);
  terminal.print();
  terminal.print('Steps:');
  let current = best.score;
  const rows = [
    [paint.dim('candidate'), paint.dim('score'), paint.dim('change'), ''],
    [best.name, formatScore(best.score), '', 'start'],
  ];
  for (const step of doc.steps) {
    if (step.pruned) {
      rows.push([step.candidate, `${higher ? '<=' : '>='} ${formatScore(step.score)}`, '', paint.dim('left out (stopped early)')]);
    } else {
      const change = step.score - current;
      rows.push([
        step.candidate,
        formatScore(step.score),
        `${change >= 0 ? '+' : ''}${formatScore(change)}`,
        step.accepted ? paint.green('kept') : paint.dim('left out'),
      ]);
    }
    if (step.accepted) current = step.score;
  }
  for (const line of table(rows, [false, true, true, false])) terminal.print(`  ${line}`);
  if (doc.leftOut.length > 0) terminal.print(`Left out without a try (diverged): ${doc.leftOut.join(', ')}`);
  terminal.print();
  const gain = doc.score - best.score;
  terminal.print(`Chosen: ${doc.chosen.join(', ')} (${doc.chosen.length} of ${doc.ingredients.length})`);
  terminal.print(
    `Score:  ${paint.bold(formatScore(doc.score))} ${doc.metric} (best ingredient ${formatScore(best.score)}, ${gain >= 0 ? '+' : ''}${formatScore(gain)})`,
  );
  if (doc.samplesSaved > 0) {
    const all = doc.samplesSaved + doc.samplesScored;
    terminal.print(
      `Early stopping skipped ${doc.samplesSaved} of ${all} sample evaluations (${((100 * doc.samplesSaved) / all).toFixed(0)}%), with the same decisions.`,
    );
  }
  if (doc.slurmJobs !== undefined) terminal.print(slurmSummary(doc.slurmJobs, doc.evaluationsWasted ?? 0));
  if (about.scoreCache !== undefined) {
    terminal.print(
      `Score cache: ${doc.evaluationsFromCache} of ${doc.evaluations} evaluations came from ${about.scoreCache}; ${doc.evaluations - doc.evaluationsFromCache} were run and added to it.`,
    );
  }
  terminal.print(`Wrote:  ${paint.cyan(doc.output)} (${about.format}; recipe and every score in its metadata) in ${formatSeconds(doc.seconds)}`);
  if (about.modelFiles !== undefined) terminal.print(`        with ${about.modelFiles}`);
}

/** "Slurm: 20 jobs (5 scored ahead and not needed, 1 re-submitted, 2 from an earlier run); 0.5 s queued and 2.1 s running on average". */
export function slurmSummary(jobs: readonly SlurmJobRecord[], wasted: number): string {
  const notes = [
    wasted > 0 ? `${wasted} scored ahead and not needed` : '',
    jobs.some((job) => job.attempt > 1) ? `${jobs.filter((job) => job.attempt > 1).length} re-submitted` : '',
    jobs.some((job) => job.reattached) ? `${jobs.filter((job) => job.reattached).length} from an earlier run` : '',
  ].filter(Boolean);
  const mean = (values: (number | null)[]): string => {
    const known = values.filter((value): value is number => value !== null);
    return known.length === 0 ? '?' : formatSeconds(known.reduce((sum, value) => sum + value, 0) / known.length);
  };
  return `Slurm:  ${jobs.length} job${jobs.length === 1 ? '' : 's'}${notes.length === 0 ? '' : ` (${notes.join(', ')})`}; ${mean(jobs.map((job) => job.queuedSeconds))} queued and ${mean(jobs.map((job) => job.runningSeconds))} running on average`;
}
