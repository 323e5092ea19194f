/**
 * Scores along the segment (1 - t) A + t B between two checkpoints: the paper's test of whether two
 * fine-tuned runs lie in one basin (no dip in between), and so are likely to soup well.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { throwIfAborted } from '../../errors.js';
import type { CandidateWeights } from '../../eval/evaluator.js';
import { runConcurrently } from '../../eval/pool.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';

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
