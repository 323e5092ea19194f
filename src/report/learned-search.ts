import { describeDirection, higherIsBetter, knownDirection } from '../eval/metrics.js';
import type { LearnedSearchDocument } from '../soup/strategies/learned-search-soup.js';
import type { ScoredWith } from '../soup/strategies/learned-soup.js';
import type { GenerationRecord } from '../soup/search/run.js';
import { formatSeconds, table } from './format.js';
import { learnedJson, summarizeWeights, type LearnedJson, type Written } from './learned.js';
import { formatScore } from '../recipe/scores.js';
import { describeScoredData } from './data-source.js';
import type { Terminal } from './terminal.js';
import { describeDivergence } from '../soup/diverged.js';

/** What `soup learned` made without gradients: the --json document, or the search for people. */
export function renderLearnedSearch(
  terminal: Terminal,
  doc: LearnedSearchDocument,
  written: Written,
  about: { scoredWith: ScoredWith; format: string; val?: string | undefined },
): void {
  const json = learnedJson(doc, written, terminal.warnings);
  if (terminal.json) terminal.printJson(json);
  else {
    const { dataset, evaluator } = about.scoredWith;
    printLearnedSearch(terminal, json, { source: describeScoredData(dataset, about.val), evaluator, format: about.format });
  }
}

const alpha = (value: number): string => value.toFixed(3);

/** Rows of a generation table: every generation when there are few, else about a dozen evenly spaced (the last always). */
export function generationRows(generations: readonly GenerationRecord[], most = 12): GenerationRecord[] {
  if (generations.length <= most) return [...generations];
  const step = Math.ceil(generations.length / most);
  return generations.filter((_, g) => g % step === 0 || g === generations.length - 1);
}

export function printGenerations(terminal: Terminal, generations: readonly GenerationRecord[], objective: string): void {
  const { paint } = terminal;
  const rows = [[paint.dim('generation'), paint.dim('evaluations'), paint.dim(`best ${objective}`), paint.dim('median'), paint.dim('best so far')]];
  for (const g of generationRows(generations))
    rows.push([String(g.generation), String(g.evaluations), formatScore(g.best), formatScore(g.median), formatScore(g.bestSoFar)]);
  for (const line of table(rows, [true, true, true, true, true])) terminal.print(`  ${line}`);
}

/** The gradient-free learned soup for a person: the search, the weights it found, the outcome. */
export function printLearnedSearch(
  terminal: Terminal,
  doc: LearnedJson<LearnedSearchDocument>,
  about: { source: string; evaluator: string; format: string },
): void {
  const { paint } = terminal;
  const h = doc.hyperparameters;
  const way = doc.objective === doc.metric ? doc.direction : knownDirection(doc.objective);
  const objective = way === undefined ? doc.objective : `${doc.objective} (${describeDirection(way)})`;
  terminal.print(
    `${paint.bold('Learned soup')} of ${doc.chosen.length} ingredients (CMA-ES, no gradients), ${objective} on ${about.source}, ${about.evaluator}`,
  );
  terminal.print(
    `${doc.by === 'block' ? `one weight per ingredient per block (${Object.keys(doc.blocks).length} blocks)` : 'one weight per ingredient'}; ` +
      `population ${String(h.population)}, sigma ${String(h.sigma)}, seed ${String(h.seed)}; ${doc.searchEvaluations} evaluations ` +
      `(${doc.evaluationsFromCache} from the score cache), ${doc.evaluationsPerSecond} per second`,
  );
  for (const bad of doc.diverged) terminal.print(`${paint.yellow('left out')} ${bad.name}: diverged (${describeDivergence(bad)})`);
  terminal.print();
  printGenerations(terminal, doc.generations, doc.objective);
  terminal.print();
  terminal.print(`Weights, largest first${doc.by === 'block' ? ' (mean, smallest and largest over the blocks)' : ''}:`);
  const scores = new Map(doc.ingredients.map((ingredient) => [ingredient.name, ingredient.score]));
  const weightRows = [[paint.dim('ingredient'), paint.dim('mean'), paint.dim('min'), paint.dim('max'), paint.dim(doc.metric)]];
  for (const row of summarizeWeights(doc.blocks))
    weightRows.push([row.name, alpha(row.mean), alpha(row.min), alpha(row.max), formatScore(scores.get(row.name)!)]);
  for (const line of table(weightRows, [false, true, true, true, true])) terminal.print(`  ${line}`);
  terminal.print();
  const higher = higherIsBetter(doc.direction);
  // Diverged runs are scored but are never the best ingredient, whatever their score.
  const finite = doc.ingredients
    .filter((ingredient) => !doc.diverged.some((bad) => bad.name === ingredient.name))
    .map((ingredient) => ingredient.score)
    .filter((score) => !Number.isNaN(score));
  const best = higher ? Math.max(...finite) : Math.min(...finite);
  const signed = (value: number): string => `${value >= 0 ? '+' : ''}${formatScore(value)}`;
  terminal.print(
    `Score:  ${paint.bold(formatScore(doc.score))} ${doc.metric} (uniform soup ${formatScore(doc.uniformScore)}, ${signed(doc.score - doc.uniformScore)}; ` +
      `best ingredient ${formatScore(best)}, ${signed(doc.score - best)})`,
  );
  terminal.print(`Wrote:  ${paint.cyan(doc.output)} (${about.format}; weights and search settings in its metadata) in ${formatSeconds(doc.seconds)}`);
}
