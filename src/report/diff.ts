import type { DiffDocument } from '../soup/strategies/diff.js';
import { table } from './format.js';
import type { Terminal } from './terminal.js';

/** What `soup diff` found: the --json document or a table of tensors, then the verdict unless they differ (that is the gate's message). */
export function renderDiff(terminal: Terminal, doc: DiffDocument): void {
  if (terminal.json) terminal.printJson(doc);
  else {
    const rows = doc.tensors.map((t) => [t.name, t.maxAbsDiff.toExponential(3), t.cosine.toFixed(8)]);
    for (const line of table([['tensor', 'max |a-b|', 'cosine'].map((h) => terminal.paint.dim(h)), ...rows], [false, true, true])) terminal.print(`  ${line}`);
    terminal.print();
  }
  if (doc.verdict !== 'different') terminal.print(terminal.paint.green(diffSummary(doc)));
}

/** One line: identical, or by how much they differ and where, against the tolerance. */
export function diffSummary(doc: DiffDocument): string {
  return doc.verdict === 'identical'
    ? `${doc.a} and ${doc.b} are identical (${doc.tensors.length} tensors)`
    : `${doc.a} and ${doc.b} differ by at most ${doc.maxAbsDiff.toExponential(3)} (in ${doc.worst}), ${doc.verdict === 'different' ? 'more than' : 'within'} the tolerance ${doc.tolerance}`;
}
