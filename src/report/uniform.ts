import type { UniformDocument } from '../soup/strategies/uniform.js';
import { formatBytes, formatCount, formatSeconds } from './format.js';
import type { Terminal } from './terminal.js';

/** What `soup uniform` made: the --json document, or a summary for people. */
export function renderUniform(
  terminal: Terminal,
  made: UniformDocument,
  written: { path: string; bytes: number; seconds: number; modelFiles: string | undefined },
): void {
  if (terminal.json) {
    const { strategy, ingredients, chosen, format, tensors, parameters, bytesRead } = made;
    terminal.printJson({
      strategy,
      ingredients,
      chosen,
      output: written.path,
      format,
      tensors,
      parameters,
      bytesRead,
      bytesWritten: written.bytes,
      seconds: Number(written.seconds.toFixed(3)),
      warnings: terminal.warnings,
    });
    return;
  }
  const paint = terminal.paint;
  terminal.print(`${paint.bold('Uniform soup')} of ${made.ingredients.length} ingredients -> ${paint.cyan(written.path)}`);
  terminal.print(`  ingredients  ${made.chosen.join(', ')}`);
  terminal.print(`  tensors      ${made.tensors} (${formatCount(made.parameters)} parameters)`);
  terminal.print(`  read         ${formatBytes(made.bytesRead)} in ${formatSeconds(written.seconds)}`);
  terminal.print(`  written      ${formatBytes(written.bytes)} (${made.format})`);
  if (written.modelFiles !== undefined) terminal.print(`  with         ${written.modelFiles}`);
}
