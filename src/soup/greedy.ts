import { isFloatDType } from '../checkpoint/dtype.js';
import type { Checkpoint, TensorInfo } from '../checkpoint/types.js';
import { InputError, throwIfAborted } from '../errors.js';
import type { CandidateWeights } from '../eval/evaluator.js';
import { higherIsBetter, improves } from '../eval/metrics.js';
import { ignoreProgress, type ProgressListener } from '../progress.js';
import { addScaled, indexOfNonFinite } from './average.js';

/**
 * A soup kept as a running float64 sum of its ingredients, so that trying one more ingredient costs
 * one pass over the weights, not one per ingredient already in the soup.
 */
export class RunningSoup {
  private readonly sums = new Map<string, Float64Array>();
  private members: Checkpoint[] = [];

  constructor(
    readonly tensors: readonly TensorInfo[],
    private readonly allowNonFinite = false,
  ) {}

  get size(): number {
    return this.members.length;
  }

  get chosen(): readonly Checkpoint[] {
    return this.members;
  }

  async add(checkpoint: Checkpoint): Promise<void> {
    for (const tensor of this.tensors) {
      if (!isFloatDType(tensor.dtype)) continue;
      const values = await readChecked(checkpoint, tensor.name, this.allowNonFinite);
      let sum = this.sums.get(tensor.name);
      if (sum === undefined) {
        sum = new Float64Array(values.length);
        this.sums.set(tensor.name, sum);
      }
      addScaled(sum, values);
    }
    this.members.push(checkpoint);
  }

  /** The soup as it stands, or with `extra` added, without changing the running sum. */
  weights(extra?: Checkpoint): CandidateWeights {
    const count = this.members.length + (extra === undefined ? 0 : 1);
    const first = this.members[0] ?? extra;
    if (first === undefined) throw new Error('internal: an empty soup has no weights');
    const members = extra === undefined ? this.members : [...this.members, extra];
    return {
      tensors: this.tensors,
      parts: members.map((checkpoint) => ({ checkpoint, weight: 1 / count })),
      floats: async (name) => {
        const sum = this.sums.get(name);
        const out = new Float32Array(sum?.length ?? 0);
        const added = extra === undefined ? undefined : await readChecked(extra, name, this.allowNonFinite);
        if (sum === undefined) return added === undefined ? out : Float32Array.from(added);
        for (let i = 0; i < out.length; i++) out[i] = (sum[i]! + (added === undefined ? 0 : added[i]!)) / count;
        return out;
      },
      bytes: (name) => first.readBytes(name),
    };
  }
}

/** One ingredient's weights as a candidate (for scoring ingredients on their own). */
export function ingredientWeights(checkpoint: Checkpoint, allowNonFinite = false): CandidateWeights {
  return {
    tensors: checkpoint.tensors(),
    parts: [{ checkpoint, weight: 1 }],
    floats: async (name) => {
      const values = await readChecked(checkpoint, name, allowNonFinite);
      return values instanceof Float32Array ? values : Float32Array.from(values);
    },
    bytes: (name) => checkpoint.readBytes(name),
  };
}

async function readChecked(checkpoint: Checkpoint, name: string, allowNonFinite: boolean): Promise<Float32Array | Float64Array> {
  const values = await checkpoint.readFloats(name);
  if (!allowNonFinite) {
    const at = indexOfNonFinite(values);
    if (at >= 0) {
      throw new InputError(checkpoint.path, `holds ${values[at]} at element ${at}`, {
        tensor: name,
        hint: 'remove this ingredient, or pass --allow-nonfinite to keep non-finite values',
      });
    }
  }
  return values;
}

/** A candidate's score, and how it was reached when the scorer stopped early. */
export interface Scored {
  score: number;
  /** Scoring stopped once the candidate could not beat the bound; `score` is the best it could still reach. */
  pruned?: boolean;
  /** Samples run, and samples in the data set. */
  scored?: number;
  total?: number;
}

/**
 * Scores a candidate. `bound`, when given, is the score to beat: the scorer may stop early once the
 * candidate provably cannot, which leaves every greedy decision as full scoring would make it.
 */
export type ScoreFunction = (candidate: CandidateWeights, label: string, bound?: { best: number; acceptTies: boolean }) => Promise<number | Scored>;

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
  /** Steps after the first (the best ingredient starts the soup). */
  steps: GreedyStep[];
  soup: RunningSoup;
  score: number;
  evaluations: number;
  /** Samples run through the model over all evaluations, and those early stopping saved. */
  samplesScored: number;
  samplesSaved: number;
}

export interface GreedyOptions {
  metric: string;
  acceptTies?: boolean;
  allowNonFinite?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressListener;
  /** Each ingredient's score, when the caller has measured them already (soup compare). */
  scores?: readonly number[];
}

/**
 * The greedy soup as the paper's reference code runs it: score every ingredient, sort best first
 * (ties in ingredient order: natural name order, as discovered), start from the best, and keep each next ingredient only if the soup's score
 * strictly improves (or ties, with acceptTies). One evaluation per ingredient and one per step.
 */
export async function greedySoup(checkpoints: readonly Checkpoint[], score: ScoreFunction, options: GreedyOptions): Promise<GreedyResult> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const total = (options.scores === undefined ? checkpoints.length : 0) + checkpoints.length - 1;
  let evaluations = 0;
  let samplesScored = 0;
  let samplesSaved = 0;
  let seconds = 0;
  const timing = (running: number): { running: number; secondsEach?: number } => ({ running, ...(evaluations > 0 ? { secondsEach: seconds / evaluations } : {}) });
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

  const scores: number[] = [...(options.scores ?? [])];
  if (options.scores === undefined) {
    for (const checkpoint of checkpoints) scores.push((await scoreOne(ingredientWeights(checkpoint, options.allowNonFinite), checkpoint.name)).score);
  }

  const sign = higherIsBetter(options.metric) ? -1 : 1;
  const order = checkpoints
    .map((_, k) => k)
    .sort((a, b) => sign * (scores[a]! - scores[b]!) || (Number.isNaN(scores[a]!) ? 1 : 0) - (Number.isNaN(scores[b]!) ? 1 : 0) || a - b);

  const soup = new RunningSoup(checkpoints[0]!.tensors(), options.allowNonFinite);
  await soup.add(checkpoints[order[0]!]!);
  let best = scores[order[0]!]!;
  const steps: GreedyStep[] = [];
  for (const k of order.slice(1)) {
    const candidate = checkpoints[k]!;
    const acceptTies = options.acceptTies ?? false;
    const trial = await scoreOne(soup.weights(candidate), `${candidate.name} (+${soup.size} in soup)`, { best, acceptTies });
    const accepted = !trial.pruned && improves(options.metric, trial.score, best, acceptTies);
    steps.push({ candidate: candidate.name, score: trial.score, accepted, ...(trial.pruned ? { pruned: true } : {}) });
    if (accepted) {
      await soup.add(candidate);
      best = trial.score;
    }
  }
  return { scores, steps, soup, score: best, evaluations, samplesScored, samplesSaved };
}
