import { describeDirection } from '../eval/metrics.js';
import type { Comparison } from '../soup/strategies/compare-run.js';
import { compareMarkdown, compareTable, directionOf } from './compare.js';
import { writeReport } from './output.js';
import { comparePlot } from './plot.js';
import type { Terminal } from './terminal.js';

/** What `soup compare` found: the --markdown and --plot files, then the --json document or the table with its notes and gates. */
export async function renderCompare(
  terminal: Terminal,
  { document, evaluator }: Comparison,
  files: { markdown?: string | undefined; plot?: string | undefined },
): Promise<void> {
  if (files.markdown !== undefined) await writeReport(files.markdown, compareMarkdown(document));
  if (files.plot !== undefined) await writeReport(files.plot, comparePlot(document));
  if (terminal.json) {
    terminal.printJson(document);
    return;
  }
  const { paint } = terminal;
  const direction = describeDirection(directionOf(document));
  const ingredients = document.rows.filter((row) => row.kind === 'ingredient').length;
  terminal.print(`${paint.bold('Comparison')} of ${ingredients} ingredients, ${document.metric} (${direction}), ${evaluator}`);
  terminal.print();
  for (const line of compareTable(document, paint)) terminal.print(`  ${line}`);
  terminal.print();
  const greedy = document.rows.find((row) => row.kind === 'greedy');
  terminal.print(`* best of its column (${direction}). The greedy soup was chosen on ${document.datasets[0]} only: ${greedy?.chosen?.join(', ')}.`);
  for (const note of document.notes ?? []) terminal.print(`Note: ${note}.`);
  for (const [kind, file] of Object.entries(document.saved ?? {})) terminal.print(`Saved the ${kind} soup to ${paint.cyan(file)}.`);
  if (files.markdown !== undefined) terminal.print(`Markdown report: ${files.markdown}`);
  if (files.plot !== undefined) terminal.print(`Plot: ${files.plot}`);
  for (const gate of document.gates ?? []) terminal.print(`${gate.passed ? paint.green('PASS') : paint.red('FAIL')} ${gate.gate}: ${gate.detail}`);
}
