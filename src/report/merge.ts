import path from 'node:path';
import { MERGEKIT_CONFIG, type MergeDocument } from '../soup/strategies/merge.js';
import { formatBytes, formatSeconds } from './format.js';
import type { Terminal } from './terminal.js';

/** What `soup merge` made: the --json document, or a summary for people. */
export function renderMerge(
  terminal: Terminal,
  made: MergeDocument,
  written: { path: string; files: string[]; bytes: number; seconds: number; folder: boolean },
): void {
  if (terminal.json) {
    const { strategy, method, base, ingredients, chosen, parameters, modelParameters, randomSeed, format } = made;
    terminal.printJson({
      strategy,
      method,
      base,
      ingredients,
      chosen,
      parameters,
      modelParameters,
      randomSeed,
      output: written.path,
      format,
      files: written.files,
      bytesWritten: written.bytes,
      seconds: Number(written.seconds.toFixed(3)),
      warnings: terminal.warnings,
    });
    return;
  }
  const paint = terminal.paint;
  const count = made.chosen.length;
  terminal.print(`${paint.bold(`Merge (${made.method})`)} of ${count} ingredient${count === 1 ? '' : 's'} -> ${paint.cyan(written.path)}`);
  if (made.base !== null) terminal.print(`  base         ${made.base.name}`);
  terminal.print(`  ingredients  ${made.chosen.join(', ')}`);
  const shown = Object.entries(made.parameters).map(([name, value]) => `${name}=${JSON.stringify(value)}`);
  if (shown.length > 0) terminal.print(`  parameters   ${shown.join(' ')}`);
  terminal.print(`  written      ${formatBytes(written.bytes)} (${made.format}) in ${formatSeconds(written.seconds)}`);
  if (written.folder) terminal.print(`  recipe       ${path.join(written.path, MERGEKIT_CONFIG)}`);
}
