import type { Checkpoint } from '../../checkpoint/types.js';
import { InputError, throwIfAborted } from '../../errors.js';
import { byScore, improves, type Direction } from '../../eval/metrics.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { createLookahead } from './greedy-lookahead.js';
import { RunningSoup, type SoupBuilder } from './candidate.js';
import { ingredientWeights, type CandidateWeights } from '../../weights/candidate.js';

/** A candidate's score, and how it was reached when the scorer stopped early. */
export interface Scored {
  score: number;
  /** Scoring stopped once the candidate could not beat the bound; `score` is the best it could still reach. */
  pruned?: boolean;
  /** Samples run, and samples in the data set. */
  scored?: number;
  total?: number;
  /** Answered from the score cache. */
  cached?: boolean;
}

/**
 * Scores a candidate. `bound`, when given, is the score to beat: the scorer may stop early once the
 * candidate provably cannot, which leaves every greedy decision as full scoring would make it.
 */
export type ScoreFunction = (
  candidate: CandidateWeights,
  label: string,
  bound?: { best: number; acceptTies: boolean },
  signal?: AbortSignal,
) => Promise<number | Scored>;

export interface GreedyStep {
  candidate: string;
  score: number;
  accepted: boolean;
  /** Scoring stopped early: `score` is the best the soup could still have reached. */
  pruned?: boolean;
}

export interface GreedyResult {
  /** Each ingredient's own score, in ingredient (name) order. */
  scores: number[];
  /** Ingredients left out without a try (diverged), in ingredient order. */
  leftOut: Checkpoint[];
  /** Steps after the first (the best ingredient starts the soup). */
  steps: GreedyStep[];
  soup: SoupBuilder;
  score: number;
  evaluations: number;
  /** Samples run through the model over all evaluations, and those early stopping saved. */
  samplesScored: number;
  samplesSaved: number;
  /** Evaluations scored ahead (--jobs) whose result no decision needed, and how many of those the score cache answered. */
  evaluationsWasted?: number;
  evaluationsWastedCached?: number;
}

export interface GreedyOptions {
  metric: string;
  direction: Direction;
  /** Ingredients never put in the soup (diverged: non-finite weights): scored, ranked last, no candidate holds them. */
  exclude?: ReadonlySet<Checkpoint>;
  acceptTies?: boolean;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Each ingredient's score, when the caller has measured them already (soup compare). */
  scores?: readonly number[];
  /** The soup to grow; by default the uniform running sum (the paper's greedy soup). */
  soup?: SoupBuilder;
  /** How one ingredient alone is scored; by default its own weights (a method may ship it otherwise). */
  single?: (checkpoint: Checkpoint) => CandidateWeights;
  /**
   * Evaluations the scorer runs at once (a concurrent scorer that never stops early, such as
   * --eval-cmd): above 1, idle ones score the next steps' candidates for both outcomes of the current one.
   */
  lookahead?: number;
}

/**
 * The greedy soup as the paper's reference code runs it: score every ingredient, sort best first
 * (ties in ingredient order: natural name order, as discovered), start from the best, and keep each next ingredient only if the soup's score
 * strictly improves (or ties, with acceptTies). One evaluation per ingredient and one per step.
 * Excluded (diverged) ingredients are scored and ranked last but never tried: a soup holding NaN is NaN.
 */
export async function greedySoup(checkpoints: readonly Checkpoint[], score: ScoreFunction, options: GreedyOptions): Promise<GreedyResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const total = (options.scores === undefined ? checkpoints.length : 0) + checkpoints.length - 1 - (options.exclude?.size ?? 0);
  let evaluations = 0;
  let samplesScored = 0;
  let samplesSaved = 0;
  let seconds = 0;
  const timing = (running: number): { running: number; secondsEach?: number } => ({
    running,
    ...(evaluations > 0 ? { secondsEach: seconds / evaluations } : {}),
  });
  const scoreOne = async (candidate: CandidateWeights, label: string, bound?: { best: number; acceptTies: boolean }): Promise<Scored> => {
    throwIfAborted(options.signal);
    onProgress({ kind: 'score', done: evaluations, total, candidate: label, ...timing(1) });
    const started = performance.now();
    const value = await score(candidate, label, bound);
    const scored: Scored = typeof value === 'number' ? { score: value } : value;
    seconds += (performance.now() - started) / 1000;
    evaluations++;
    samplesScored += scored.scored ?? 0;
    samplesSaved += (scored.total ?? 0) - (scored.scored ?? scored.total ?? 0);
    onProgress({ kind: 'score', done: evaluations, total, candidate: label, ...timing(0) });
    return scored;
  };

  const exclude = options.exclude ?? new Set<Checkpoint>();
  const scores: number[] = [...(options.scores ?? [])];
  if (options.scores === undefined) {
    for (const checkpoint of checkpoints) {
      // A diverged ingredient is scored as it is: a method would refuse its non-finite values.
      const single = exclude.has(checkpoint)
        ? ingredientWeights(checkpoint, true)
        : (options.single?.(checkpoint) ?? ingredientWeights(checkpoint, options.allowNonFinite));
      scores.push((await scoreOne(single, checkpoint.name)).score);
    }
  }

  const rank = byScore(options.direction);
  const order = checkpoints
    .map((_, k) => k)
    .sort((a, b) => Number(exclude.has(checkpoints[a]!)) - Number(exclude.has(checkpoints[b]!)) || rank(scores[a]!, scores[b]!) || a - b);
  const kept = order.filter((k) => !exclude.has(checkpoints[k]!));
  if (kept.length === 0) {
    throw new InputError(checkpoints[0]!.path, `every ingredient diverged (non-finite weights): there is nothing to soup`, {
      hint: 'soup finite runs, or pass --allow-nonfinite to soup these anyway',
    });
  }

  const soup = options.soup ?? new RunningSoup(checkpoints[0]!.tensors(), options.allowNonFinite);
  await soup.add(checkpoints[kept[0]!]!);
  let best = scores[kept[0]!]!;
  const steps: GreedyStep[] = [];
  if ((options.lookahead ?? 1) > 1 && options.soup === undefined) {
    const tried = kept.slice(1).map((k) => checkpoints[k]!);
    const ahead = createLookahead(
      checkpoints[kept[0]!]!,
      tried,
      checkpoints[0]!.tensors(),
      options.lookahead!,
      async (candidate, label, signal) => {
        const value = await score(candidate, label, undefined, signal);
        return typeof value === 'number' ? { score: value } : value;
      },
      {
        allowNonFinite: options.allowNonFinite ?? false,
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      },
    );
    let path = '';
    try {
      for (const [step, candidate] of tried.entries()) {
        onProgress({ kind: 'score', done: evaluations, total, candidate: `${candidate.name} (+${soup.size} in soup)`, ...timing(1) });
        const started = performance.now();
        const value = await ahead.score(step, path);
        seconds += (performance.now() - started) / 1000;
        evaluations++;
        const accepted = improves(options.direction, value, best, options.acceptTies ?? false);
        steps.push({ candidate: candidate.name, score: value, accepted });
        path += accepted ? 'A' : 'R';
        ahead.prune(path);
        if (accepted) {
          await soup.add(candidate);
          best = value;
        }
        onProgress({ kind: 'score', done: evaluations, total, candidate: candidate.name, ...timing(0) });
      }
    } finally {
      await ahead.close();
    }
    return {
      scores,
      leftOut: checkpoints.filter((checkpoint) => exclude.has(checkpoint)),
      steps,
      soup,
      score: best,
      evaluations,
      samplesScored,
      samplesSaved,
      evaluationsWasted: ahead.wasted,
      evaluationsWastedCached: ahead.wastedCached,
    };
  }
  for (const k of kept.slice(1)) {
    const candidate = checkpoints[k]!;
    const acceptTies = options.acceptTies ?? false;
    const trial = await scoreOne(soup.weights(candidate), `${candidate.name} (+${soup.size} in soup)`, { best, acceptTies });
    const accepted = !trial.pruned && improves(options.direction, trial.score, best, acceptTies);
    steps.push({ candidate: candidate.name, score: trial.score, accepted, ...(trial.pruned ? { pruned: true } : {}) });
    if (accepted) {
      await soup.add(candidate);
      best = trial.score;
    }
  }
  const leftOut = checkpoints.filter((checkpoint) => exclude.has(checkpoint));
  return { scores, leftOut, steps, soup, score: best, evaluations, samplesScored, samplesSaved };
}
