import { describeDirection, knownDirection } from '../eval/metrics.js';
import { formatScore } from '../recipe/scores.js';
import { describeDivergence } from '../soup/diverged.js';
import type { CheckpointScore } from '../soup/strategies/eval.js';
import { describeScoredData } from './data-source.js';
import { table } from './format.js';
import type { Terminal } from './terminal.js';

/** What `soup eval` measured: the --json document, or every metric with the way it points. */
export function renderEval(terminal: Terminal, made: CheckpointScore, about: { name: string; val: string | undefined }): void {
  const doc = made.document;
  if (terminal.json) {
    terminal.printJson(doc);
    return;
  }
  terminal.print(`${terminal.paint.bold(about.name)} on ${describeScoredData(made.data, about.val)}, ${made.evaluator}`);
  const rows = Object.entries(doc.metrics).map(([metric, value]) => {
    const way = metric === doc.metric ? doc.direction : knownDirection(metric);
    return [metric, formatScore(value), way === undefined ? '' : terminal.paint.dim(describeDirection(way))];
  });
  for (const line of table(rows, [false, true, false])) terminal.print(`  ${line}`);
  if (doc.diverged !== undefined) terminal.print(terminal.paint.yellow(`Diverged: ${describeDivergence(doc.diverged)}; a soup leaves this checkpoint out.`));
}
