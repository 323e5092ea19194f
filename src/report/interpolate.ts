import { byScore, describeDirection, higherIsBetter, type Direction } from '../eval/metrics.js';
import { describeDivergence, type Divergence } from '../soup/diverged.js';
import type { SlurmJobRecord } from '../eval/slurm.js';
import type { InterpolationPoint } from '../soup/strategies/interpolate.js';
import { formatSeconds, table } from './format.js';
import { formatScore } from '../recipe/scores.js';
import type { Terminal } from './terminal.js';

/** The --json document of `soup interpolate`. */
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
  plot?: string;
  seconds: number;
  warnings: string[];
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs?: SlurmJobRecord[];
}

export function printInterpolation(
  terminal: Terminal,
  doc: InterpolationDocument,
  about: { names: [string, string]; source: string; evaluator: string },
): void {
  const { paint } = terminal;
  const [a, b] = about.names;
  terminal.print(
    `${paint.bold('Interpolation')} from ${a} (t = 0) to ${b} (t = 1), ${doc.metric} (${describeDirection(doc.direction)}) on ${about.source}, ${about.evaluator}`,
  );
  terminal.print();
  const last = doc.points.length - 1;
  const rows = [[paint.dim('t'), paint.dim(doc.metric), '']];
  for (const [i, point] of doc.points.entries()) {
    const name = i === 0 ? a : i === last ? b : '';
    const note = point.diverged === true ? paint.yellow('non-finite weights') : '';
    rows.push([point.t.toFixed(2), formatScore(point.score), [name, note].filter((part) => part !== '').join('  ')]);
  }
  for (const line of table(rows, [true, true, false])) terminal.print(`  ${line}`);
  terminal.print();
  if (doc.dip === null) {
    for (const end of doc.diverged ?? []) terminal.print(paint.yellow(`${end.name} diverged: ${describeDivergence(end)}.`));
    terminal.print(paint.yellow('No verdict about basins: some points hold non-finite weights or scores.'));
    if (doc.plot !== undefined) terminal.print(`Plot: ${doc.plot}`);
    terminal.print(paint.dim(`${doc.points.length} points in ${formatSeconds(doc.seconds)}`));
    return;
  }
  const higher = higherIsBetter(doc.direction);
  const best = [...doc.points].sort((x, y) => byScore(doc.direction)(x.score, y.score))[0]!;
  const ends = [doc.points[0]!, doc.points[last]!];
  const bestEnd = higher ? Math.max(ends[0]!.score, ends[1]!.score) : Math.min(ends[0]!.score, ends[1]!.score);
  const where = doc.dip.dip > 0 ? ` at t = ${doc.dip.t.toFixed(2)}` : '';
  // A dip is a fall below the line where higher is better, a rise above it where lower is (a loss).
  const away = higher ? 'fall below' : 'rise above';
  terminal.print(`Largest ${away} the straight line between the end points: ${formatScore(Math.max(0, doc.dip.dip))}${where}.`);
  terminal.print(
    doc.barrier === true
      ? paint.yellow('A barrier between the runs: they may lie in different basins, and may not soup well.')
      : paint.green('No barrier: the runs look like one basin, and should soup well.'),
  );
  if (best !== ends[0] && best !== ends[1] && best.score !== bestEnd) {
    terminal.print(
      `Best: ${paint.bold(formatScore(best.score))} at t = ${best.t.toFixed(2)}, ${formatScore(Math.abs(best.score - bestEnd))} better than the better end point.`,
    );
  }
  if (doc.plot !== undefined) terminal.print(`Plot: ${doc.plot}`);
  terminal.print(paint.dim(`${doc.points.length} points in ${formatSeconds(doc.seconds)}`));
}
