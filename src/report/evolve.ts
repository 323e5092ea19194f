import path from 'node:path';
import { formatScore } from '../recipe/scores.js';
import type { EvolveDocument } from '../soup/strategies/evolve-soup.js';
import type { ScoredWith } from '../soup/strategies/learned-soup.js';
import { formatSeconds } from './format.js';
import { printGenerations } from './learned-search.js';
import { searchPlot } from './search-plot.js';
import type { Terminal } from './terminal.js';

/** The convergence plot of an evolve run (SVG), titled with the method and the recipe searched. */
export function evolvePlot(doc: EvolveDocument, file: string): string {
  return searchPlot(doc.generations, `soup evolve: ${doc.method} on ${path.basename(file)}`, doc.objective);
}

/** What `soup evolve` made: the --json document, or the search and the values found for people. */
export function renderEvolve(
  terminal: Terminal,
  doc: EvolveDocument,
  written: { path: string; seconds: number },
  about: { scoredWith: ScoredWith; format: string; evalCmd?: string | undefined },
): void {
  if (terminal.json) {
    const { plot, ...fields } = doc;
    terminal.printJson({ ...fields, output: written.path, plot, seconds: Number(written.seconds.toFixed(3)), warnings: terminal.warnings });
    return;
  }
  const { paint } = terminal;
  const { dataset, evaluator } = about.scoredWith;
  const source = dataset === undefined ? `\`${about.evalCmd}\`` : `${dataset.name} (${dataset.n} samples)`;
  terminal.print(
    `${paint.bold(`Evolved merge (${doc.method})`)} of ${doc.chosen.length} ingredients: ${doc.ranges.length} values searched by CMA-ES, ${doc.objective} on ${source}, ${evaluator}`,
  );
  terminal.print(
    `population ${doc.hyperparameters.population}, seed ${doc.hyperparameters.seed}; ${doc.evaluations} evaluations (${doc.evaluationsFromCache} from the score cache), ${doc.evaluationsPerSecond} per second`,
  );
  terminal.print();
  printGenerations(terminal, doc.generations, doc.objective);
  terminal.print();
  terminal.print('Values found:');
  for (const range of doc.ranges) terminal.print(`  ${range.path}  ${doc.found[range.path]!.toFixed(4)}  (${range.min} .. ${range.max})`);
  terminal.print();
  const startScore = doc.startMetrics[doc.metric];
  terminal.print(`Score:  ${paint.bold(formatScore(doc.score ?? Number.NaN))} ${doc.metric} (middle of every range ${formatScore(startScore ?? Number.NaN)})`);
  terminal.print(
    `Wrote:  ${paint.cyan(written.path)} (${about.format}) in ${formatSeconds(written.seconds)}; the recipe found: ${doc.recipeFile} (soup merge ${doc.recipeFile} -o OUT makes it again)`,
  );
  if (doc.plot !== null) terminal.print(`Plot:   ${doc.plot}`);
}
