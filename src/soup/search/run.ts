/**
 * The search loop that learned and evolved soups share: CMA-ES proposes points, a space decodes
 * each into a candidate, an evaluator scores it (through the score journal when there is one, and
 * `jobs` at a time), and the best candidate seen wins. Everything that decides the outcome (the
 * seed, the order of candidates, the tie rule) is independent of timing, so a run with --jobs 8 or
 * one resumed from its journal ends with the same candidate as a plain run.
 */
import { UsageError, throwIfAborted } from '../../errors.js';
import type { Evaluation } from '../../eval/evaluator.js';
import { higherIsBetter, type Direction } from '../../eval/metrics.js';
import { runConcurrently } from '../../eval/pool.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import type { JournalEntry, ScoreJournal } from '../../eval/score-cache.js';
import { Cmaes } from './cmaes.js';

/** What is searched: points of R^n, each decoded into a candidate the evaluator can score. */
export interface SearchSpace<T> {
  readonly dimension: number;
  /** Where the search starts (scored first: the uniform soup, the middle of every range). */
  readonly start: readonly number[];
  /** Starting step size of the search distribution. */
  readonly sigma: number;
  decode(point: Float64Array): T;
  /** The candidate's key in the score journal: a hash of everything that decides its weights. */
  key(candidate: T): string;
  /** A short name for the journal and progress, e.g. "generation 3, candidate 5". */
  label?(candidate: T): string;
}

export interface SearchOptions {
  /** Evaluations in all, the starting point included. */
  evaluations: number;
  population?: number | undefined;
  seed: number;
  /** Candidates scored at once (an evaluator that takes several at a time: --eval-cmd). */
  jobs: number;
  /** The metric ranked on: the loss where the evaluator gives one, else the --metric. */
  objective: string;
  /** Which way the objective points (the metric's direction, or the loss's). */
  direction: Direction;
  journal?: { journal: ScoreJournal; evaluator: string } | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ProgressListener | undefined;
}

export interface GenerationRecord {
  generation: number;
  /** Evaluations so far, this generation's included. */
  evaluations: number;
  /** This generation's best and median objective. */
  best: number;
  median: number;
  /** The best objective seen so far, over every generation. */
  bestSoFar: number;
}

export interface SearchOutcome<T> {
  best: T;
  bestPoint: Float64Array;
  /** Every metric of the best candidate. */
  metrics: Record<string, number>;
  /** The starting point's metrics (the uniform soup, for learned). */
  startMetrics: Record<string, number>;
  generations: GenerationRecord[];
  evaluations: number;
  /** Of which the evaluator really ran (the rest came from the journal). */
  evaluatorCalls: number;
  seconds: number;
}

function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Scores `candidate`, from the journal when it holds it. A score that has no value for the
 * objective counts as the worst.
 */
async function scoreOne<T>(
  space: SearchSpace<T>,
  candidate: T,
  evaluate: (candidate: T, signal: AbortSignal) => Promise<Evaluation>,
  options: SearchOptions,
  signal: AbortSignal,
  calls: { count: number },
): Promise<Record<string, number>> {
  const journal = options.journal;
  const key = journal === undefined ? undefined : space.key(candidate);
  if (journal !== undefined) {
    const known = journal.journal.lookup(journal.evaluator, key!);
    if (known !== undefined) return known.metrics;
  }
  const started = performance.now();
  const evaluation = await evaluate(candidate, signal);
  calls.count++;
  if (journal !== undefined) {
    const entry: JournalEntry = {
      evaluator: journal.evaluator,
      candidate: key!,
      label: space.label?.(candidate) ?? 'search candidate',
      metrics: evaluation.metrics,
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
    };
    if (evaluation.n !== undefined) entry.n = evaluation.n;
    await journal.journal.append(entry);
  }
  return evaluation.metrics;
}

/** Runs CMA-ES over `space` until the evaluation budget is spent; the best candidate seen wins, ties to the earlier one. */
export async function runSearch<T>(
  space: SearchSpace<T>,
  evaluate: (candidate: T, signal: AbortSignal) => Promise<Evaluation>,
  options: SearchOptions,
): Promise<SearchOutcome<T>> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const started = performance.now();
  const higher = higherIsBetter(options.direction);
  // CMA-ES minimises; a missing or NaN objective is the worst.
  const cost = (metrics: Record<string, number>): number => {
    const value = metrics[options.objective];
    if (value === undefined || Number.isNaN(value)) return Number.NaN;
    return higher ? -value : value;
  };
  const better = (a: number, b: number): boolean => !Number.isNaN(a) && (Number.isNaN(b) || a < b);
  const calls = { count: 0 };
  let evaluations = 0;
  const status = (generation: number, best: number): void => {
    const seconds = (performance.now() - started) / 1000;
    const rate = seconds > 0 ? evaluations / seconds : 0;
    const shown = Number.isNaN(best) ? 'none' : (higher ? -best : best).toFixed(4);
    onProgress({
      kind: 'score',
      done: evaluations,
      total: options.evaluations,
      candidate: `generation ${generation}: best ${options.objective} ${shown}, ${rate.toFixed(1)} evaluations/s`,
    });
  };

  const startPoint = Float64Array.from(space.start);
  const startCandidate = space.decode(startPoint);
  status(0, Number.NaN);
  const startMetrics = await scoreOne(space, startCandidate, evaluate, options, options.signal ?? new AbortController().signal, calls);
  evaluations++;
  if (!(options.objective in startMetrics)) {
    const has = Object.keys(startMetrics).join(', ') || 'nothing';
    throw new UsageError(`--objective ${options.objective}: the scores have no "${options.objective}" (they have: ${has})`, {
      hint: 'rank by one of those with --objective, or make the evaluation report it',
    });
  }
  let best: { candidate: T; point: Float64Array; metrics: Record<string, number>; cost: number } = {
    candidate: startCandidate,
    point: startPoint,
    metrics: startMetrics,
    cost: cost(startMetrics),
  };
  const generations: GenerationRecord[] = [];
  const es = new Cmaes({
    mean: space.start,
    sigma: space.sigma,
    seed: options.seed,
    ...(options.population === undefined ? {} : { population: options.population }),
  });
  while (evaluations < options.evaluations) {
    throwIfAborted(options.signal);
    const points = es.ask();
    // The last generation may be cut short by the budget; its candidates still count for the best.
    const count = Math.min(points.length, options.evaluations - evaluations);
    const candidates = points.slice(0, count).map((point) => space.decode(point));
    const metrics: Record<string, number>[] = new Array(count);
    status(es.generation + 1, best.cost);
    await runConcurrently(
      count,
      options.jobs,
      async (k, signal) => {
        metrics[k] = await scoreOne(space, candidates[k]!, evaluate, options, signal, calls);
        evaluations++;
        status(es.generation + 1, best.cost);
      },
      options.signal,
    );
    const costs = metrics.map(cost);
    for (let k = 0; k < count; k++) {
      if (better(costs[k]!, best.cost)) best = { candidate: candidates[k]!, point: points[k]!, metrics: metrics[k]!, cost: costs[k]! };
    }
    const generationBest = costs.reduce((a, b) => (better(b, a) ? b : a), Number.NaN);
    const signed = (value: number): number => (higher ? -value : value);
    generations.push({ generation: es.generation + 1, evaluations, best: signed(generationBest), median: signed(median(costs)), bestSoFar: signed(best.cost) });
    if (count < points.length) break;
    es.tell(costs);
  }
  return {
    best: best.candidate,
    bestPoint: best.point,
    metrics: best.metrics,
    startMetrics,
    generations,
    evaluations,
    evaluatorCalls: calls.count,
    seconds: (performance.now() - started) / 1000,
  };
}
