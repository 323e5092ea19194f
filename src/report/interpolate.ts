import { byScore, describeDirection, higherIsBetter } from '../eval/metrics.js';
import { describeDivergence } from '../soup/diverged.js';
import type { Interpolation, InterpolationDocument } from '../soup/strategies/interpolate.js';
import { describeScoredData } from './data-source.js';
import { formatSeconds, table } from './format.js';
import { linePlot } from './line-plot.js';
import { writeReport } from './output.js';
import { formatScore } from '../recipe/scores.js';
import type { Terminal } from './terminal.js';

/** What `soup interpolate` found: the --plot file, then the --json document or a table and a verdict for people. */
export async function renderInterpolation(
  terminal: Terminal,
  made: Interpolation,
  run: { val: string | undefined; plot: string | undefined; seconds: number },
): Promise<void> {
  const { slurmJobs, ...found } = made.document;
  const doc: Document = {
    ...found,
    ...(run.plot === undefined ? {} : { plot: run.plot }),
    seconds: Number(run.seconds.toFixed(3)),
    warnings: terminal.warnings,
    ...(slurmJobs === undefined ? {} : { slurmJobs }),
  };
  if (run.plot !== undefined) await writeReport(run.plot, plotOf(made));
  if (terminal.json) terminal.printJson(doc);
  else printInterpolation(terminal, doc, { names: doc.names, source: describeScoredData(made.data, run.val), evaluator: made.evaluator });
}

type Document = InterpolationDocument & { plot?: string; seconds: number; warnings: string[] };

function plotOf({ document: doc, data }: Interpolation): string {
  const [a, b] = doc.names;
  return linePlot({
    title: `From ${a} to ${b}`,
    xTitle: `t: (1 - t) ${a} + t ${b}`,
    yTitle: `${doc.metric} (${describeDirection(doc.direction)}) on ${data?.name ?? 'the --eval-cmd data'}`,
    points: doc.points.map((point) => ({ x: point.t, y: point.score, ...(point.diverged === true ? { hollow: true } : {}) })),
    ends: [a, b],
    chord: doc.dip !== null,
  });
}

function printInterpolation(terminal: Terminal, doc: Document, about: { names: [string, string]; source: string; evaluator: string }): void {
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
