/**
 * Scores along the segment (1 - t) A + t B between two checkpoints: the paper's test of whether two
 * fine-tuned runs lie in one basin (no dip in between), and so are likely to soup well.
 */
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import { closeAll, nameTogether, openAll, type DiscoverOptions } from '../../checkpoint/discover.js';
import { checkOnnxIngredients } from '../../checkpoint/onnx/compatible.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { IncompatibleError, throwIfAborted } from '../../errors.js';
import { createEvaluator, type EvaluationOptions } from '../../eval/create.js';
import type { CandidateWeights } from '../../eval/evaluator.js';
import { higherIsBetter, type Direction } from '../../eval/metrics.js';
import { runConcurrently } from '../../eval/pool.js';
import type { SlurmJobRecord } from '../../eval/slurm.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { describeDivergence, findNonFinite, type Divergence } from '../diverged.js';
import { discoverSingle } from '../single.js';

/** `steps` values of t from 0 to 1, both included, evenly spaced. */
export function interpolationPoints(steps: number): number[] {
  if (steps < 2) throw new RangeError('an interpolation needs at least its 2 end points');
  return Array.from({ length: steps }, (_, i) => (i === steps - 1 ? 1 : i / (steps - 1)));
}

/**
 * The weights (1 - t) A + t B, computed in float64 and rounded once to float32. t = 0 and t = 1 are A
 * and B themselves, read as they are: the other end point never enters (0 * NaN is NaN, so a diverged
 * B would otherwise poison A's own score). Integer and bool tensors come from the nearer end point.
 */
export function interpolatedWeights(a: Checkpoint, b: Checkpoint, t: number): CandidateWeights {
  const near = t <= 0.5 ? a : b;
  return {
    tensors: a.tensors(),
    parts:
      t === 0
        ? [{ checkpoint: a, weight: 1 }]
        : t === 1
          ? [{ checkpoint: b, weight: 1 }]
          : [
              { checkpoint: a, weight: 1 - t },
              { checkpoint: b, weight: t },
            ],
    floats: async (name) => {
      if (t === 0 || t === 1) return Float32Array.from(await near.readFloats(name));
      const [x, y] = [await a.readFloats(name), await b.readFloats(name)];
      const out = new Float32Array(x.length);
      for (let i = 0; i < out.length; i++) out[i] = (1 - t) * x[i]! + t * y[i]!;
      return out;
    },
    bytes: (name) => near.readBytes(name),
  };
}

export interface InterpolationPoint {
  t: number;
  score: number;
  /** The point's weights hold NaN or infinities: a diverged end point weighs in (t < 1 for A, t > 0 for B). */
  diverged?: true;
}

/** Scores every point of the segment in order of t, or `jobs` at a time (the points are independent). */
export async function scoreInterpolation(
  a: Checkpoint,
  b: Checkpoint,
  steps: number,
  score: (candidate: CandidateWeights, signal?: AbortSignal) => Promise<number>,
  options: { signal?: AbortSignal; onProgress?: ProgressListener; diverged?: { a: boolean; b: boolean }; jobs?: number } = {},
): Promise<InterpolationPoint[]> {
  const onProgress = options.onProgress ?? ignoreProgress;
  const points: InterpolationPoint[] = [];
  const ts = interpolationPoints(steps);
  if ((options.jobs ?? 1) > 1) {
    const scores: number[] = new Array(ts.length);
    let done = 0;
    await runConcurrently(
      ts.length,
      options.jobs!,
      async (i, signal) => {
        scores[i] = await score(interpolatedWeights(a, b, ts[i]!), signal);
        onProgress({ kind: 'score', done: ++done, total: ts.length, candidate: `t = ${ts[i]!.toFixed(2)}` });
      },
      options.signal,
    );
    return ts.map((t, i) => ({ t, score: scores[i]! }));
  }
  for (const [i, t] of ts.entries()) {
    throwIfAborted(options.signal);
    onProgress({ kind: 'score', done: i, total: ts.length, candidate: `t = ${t.toFixed(2)}` });
    const diverged = (options.diverged?.a === true && t < 1) || (options.diverged?.b === true && t > 0);
    points.push({ t, score: await score(interpolatedWeights(a, b, t)), ...(diverged ? { diverged: true as const } : {}) });
  }
  return points;
}

/** Whether a basin verdict can be given: every point has finite weights and a finite score. */
export function verdictPossible(points: readonly InterpolationPoint[]): boolean {
  return points.every((point) => point.diverged !== true && Number.isFinite(point.score));
}

/**
 * How far the curve falls below the straight line between its end points, at its worst (positive:
 * a dip, as between runs in different basins; zero or negative: none). For a loss, where lower is
 * better, a bump above the line is the dip.
 */
export function largestDip(points: readonly InterpolationPoint[], higherIsBetter: boolean): { t: number; dip: number } {
  const first = points[0]!;
  const last = points[points.length - 1]!;
  let worst = { t: first.t, dip: -Infinity };
  for (const point of points) {
    const line = first.score + (last.score - first.score) * point.t;
    const dip = higherIsBetter ? line - point.score : point.score - line;
    if (dip > worst.dip) worst = { t: point.t, dip };
  }
  return worst;
}

/**
 * Whether a dip is a barrier rather than noise: for accuracy and top5, more than half a point and more
 * than two samples; for other metrics, more than 1% of the end points' mean magnitude.
 */
export function isBarrier(dip: number, metric: string, points: readonly InterpolationPoint[], samples?: number): boolean {
  if (metric === 'accuracy' || metric === 'top5') return dip > Math.max(0.005, samples === undefined ? 0 : 2 / samples);
  const ends = [points[0]!.score, points[points.length - 1]!.score];
  return dip > 0.01 * ((Math.abs(ends[0]!) + Math.abs(ends[1]!)) / 2);
}

/** What `soup interpolate` found: its --json document, less the run's plot file, time and warnings. */
export interface InterpolationDocument {
  a: string;
  b: string;
  /** The ends' names, told apart as ingredient names are (`ft-a/checkpoint-20`). */
  names: [string, string];
  metric: string;
  direction: Direction;
  backend: string;
  /** Scores of (1 - t) a + t b, t from 0 to 1. */
  points: InterpolationPoint[];
  /** The largest fall below the straight line between the end points' scores, and where; null when a point is not finite (no verdict). */
  dip: { t: number; dip: number } | null;
  /** The dip is larger than noise (isBarrier): the runs may lie in different basins; null when no verdict can be given. */
  barrier: boolean | null;
  /** End points whose weights hold NaN or infinities. */
  diverged?: (Divergence & { name: string; path: string })[];
  samples: number | null;
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs?: SlurmJobRecord[];
}

export interface Interpolation {
  document: InterpolationDocument;
  /** How the points were scored, e.g. "TF.js (cpu)", and on what data (none for --eval-cmd). */
  evaluator: string;
  data: { name: string; n: number } | undefined;
}

export interface InterpolateOptions {
  steps: number;
  /** Score the weights as they are, without looking for NaN first (as soup eval does). */
  allowNonFinite: boolean;
  onProgress?: ProgressListener;
  /** Things the user should know: tensors the model does not use, a diverged end point. */
  warn: (message: string) => void;
  signal?: AbortSignal;
}

/** The two ends, each one checkpoint, opened, named apart (two runs' checkpoint-20) and checked to fit together. */
export async function openInterpolationEnds(first: string, second: string, discover: DiscoverOptions, allowFused: boolean): Promise<[Checkpoint, Checkpoint]> {
  const why = 'soup interpolate goes from one checkpoint to another';
  const ingredients = [await discoverSingle(first, discover, why), await discoverSingle(second, discover, why)];
  nameTogether(ingredients);
  const [a, b] = (await openAll(ingredients)) as [Checkpoint, Checkpoint];
  try {
    await checkOnnxIngredients([a, b], { allowFused });
    const problems = findIncompatibilities([a, b]);
    if (problems.length > 0) throw new IncompatibleError(problems);
    return [a, b];
  } catch (error) {
    await closeAll([a, b]);
    throw error;
  }
}

/** Scores the segment from `a` to `b` with the evaluator the options ask for, and judges whether a barrier lies between them. */
export async function interpolate(a: Checkpoint, b: Checkpoint, evaluation: EvaluationOptions, options: InterpolateOptions): Promise<Interpolation> {
  const { evaluator, dataset, backend, direction, slurm, warnings } = await createEvaluator(evaluation, a, undefined, options.onProgress);
  for (const warning of warnings ?? []) options.warn(warning);
  let points: InterpolationPoint[];
  const diverged: (Divergence & { name: string; path: string })[] = [];
  try {
    for (const checkpoint of options.allowNonFinite ? [] : [a, b]) {
      const divergence = await findNonFinite(checkpoint, options.signal);
      if (divergence === undefined) continue;
      diverged.push({ name: checkpoint.name, path: checkpoint.path, ...divergence });
      options.warn(
        `${checkpoint.name} diverged: ${describeDivergence(divergence)}; every point it weighs in holds non-finite weights, so no basin verdict is given`,
      );
    }
    points = await scoreInterpolation(
      a,
      b,
      options.steps,
      async (candidate, stop) => (await evaluator.evaluate(candidate, stop ?? options.signal)).metrics[evaluation.metric]!,
      {
        signal: options.signal,
        onProgress: options.onProgress,
        // Commands (a cluster's jobs above all) score the points at once, as --jobs allows.
        jobs: evaluator.concurrent === true ? (evaluation.jobs ?? evaluator.parallelism ?? 1) : 1,
        diverged: { a: diverged.some((d) => d.path === a.path), b: diverged.some((d) => d.path === b.path) },
      },
    );
  } finally {
    await evaluator.dispose();
  }
  // A dip measured through NaN weights or scores says nothing about basins.
  const dip = verdictPossible(points) ? largestDip(points, higherIsBetter(direction)) : null;
  return {
    document: {
      a: a.path,
      b: b.path,
      names: [a.name, b.name],
      metric: evaluation.metric,
      direction,
      backend,
      points,
      dip,
      barrier: dip === null ? null : isBarrier(dip.dip, evaluation.metric, points, dataset?.n),
      ...(diverged.length === 0 ? {} : { diverged }),
      samples: dataset?.n ?? null,
      ...(slurm === undefined ? {} : { slurmJobs: slurm.records }),
    },
    evaluator: evaluator.description,
    data: dataset === undefined ? undefined : { name: dataset.name, n: dataset.n },
  };
}
