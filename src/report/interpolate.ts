import type { SlurmJobRecord } from '../eval/slurm.js';
import { higherIsBetter } from '../eval/metrics.js';
import type { InterpolationPoint } from '../soup/interpolate.js';
import { formatSeconds, table } from './format.js';
import { formatScore } from './scores.js';
import type { Terminal } from './terminal.js';

/** The --json document of `soup interpolate`. */
export interface InterpolationDocument {
  a: string;
  b: string;
  metric: string;
  backend: string;
  /** Scores of (1 - t) a + t b, t from 0 to 1. */
  points: InterpolationPoint[];
  /** The largest fall below the straight line between the end points' scores, and where. */
  dip: { t: number; dip: number };
  /** The dip is larger than noise (isBarrier): the runs may lie in different basins. */
  barrier: boolean;
  samples: number | null;
  plot?: string;
  seconds: number;
  warnings: string[];
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs?: SlurmJobRecord[];
}

export function printInterpolation(terminal: Terminal, doc: InterpolationDocument, about: { names: [string, string]; source: string; evaluator: string }): void {
  const { paint } = terminal;
  const [a, b] = about.names;
  terminal.print(`${paint.bold('Interpolation')} from ${a} (t = 0) to ${b} (t = 1), ${doc.metric} on ${about.source}, ${about.evaluator}`);
  terminal.print();
  const last = doc.points.length - 1;
  const rows = [[paint.dim('t'), paint.dim(doc.metric), '']];
  for (const [i, point] of doc.points.entries()) rows.push([point.t.toFixed(2), formatScore(point.score), i === 0 ? a : i === last ? b : '']);
  for (const line of table(rows, [true, true, false])) terminal.print(`  ${line}`);
  terminal.print();
  const higher = higherIsBetter(doc.metric);
  const best = doc.points.reduce((top, point) => ((higher ? point.score > top.score : point.score < top.score) ? point : top));
  const ends = [doc.points[0]!, doc.points[last]!];
  const bestEnd = higher ? Math.max(ends[0]!.score, ends[1]!.score) : Math.min(ends[0]!.score, ends[1]!.score);
  const where = doc.dip.dip > 0 ? ` at t = ${doc.dip.t.toFixed(2)}` : '';
  terminal.print(`Largest fall below the straight line between the end points: ${formatScore(Math.max(0, doc.dip.dip))}${where}.`);
  terminal.print(
    doc.barrier
      ? paint.yellow('A barrier between the runs: they may lie in different basins, and may not soup well.')
      : paint.green('No barrier: the runs look like one basin, and should soup well.'),
  );
  if (best !== ends[0] && best !== ends[1]) {
    terminal.print(`Best: ${paint.bold(formatScore(best.score))} at t = ${best.t.toFixed(2)}, ${formatScore(Math.abs(best.score - bestEnd))} better than the better end point.`);
  }
  if (doc.plot !== undefined) terminal.print(`Plot: ${doc.plot}`);
  terminal.print(paint.dim(`${doc.points.length} points in ${formatSeconds(doc.seconds)}`));
}
