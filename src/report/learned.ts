import { bestScore, describeDirection } from '../eval/metrics.js';
import type { LearnedSearchDocument } from '../soup/strategies/learned-search-soup.js';
import type { LearnedDocument, ScoredWith } from '../soup/strategies/learned-soup.js';
import { formatBytes, formatSeconds, table } from './format.js';
import { formatScore } from '../recipe/scores.js';
import type { Terminal } from './terminal.js';

/** What writing the soup adds to a learned soup's --json document. */
export interface Written {
  path: string;
  seconds: number;
}

/** A learned soup's --json document as printed: the written soup's path after uniformScore, the time and the warnings after memoryBytes. */
export type LearnedJson<D extends LearnedDocument | LearnedSearchDocument> = D & { output: string; seconds: number; warnings: string[] };

export function learnedJson<D extends LearnedDocument | LearnedSearchDocument>(doc: D, written: Written, warnings: string[]): LearnedJson<D> {
  const json: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(doc)) {
    json[key] = value;
    if (key === 'uniformScore') json.output = written.path;
    if (key === 'memoryBytes') Object.assign(json, { seconds: Number(written.seconds.toFixed(3)), warnings });
  }
  return json as unknown as LearnedJson<D>;
}

/** What `soup learned` made by gradients: the --json document, or the training run for people. */
export function renderLearned(terminal: Terminal, doc: LearnedDocument, written: Written, about: { scoredWith: ScoredWith; format: string }): void {
  const json = learnedJson(doc, written, terminal.warnings);
  if (terminal.json) terminal.printJson(json);
  else {
    const dataset = about.scoredWith.dataset!;
    printLearned(terminal, json, { source: `${dataset.name} (${dataset.n} samples)`, evaluator: about.scoredWith.evaluator, format: about.format });
  }
}

/** Each ingredient's mean, smallest and largest alpha over the tensors, largest mean first. */
export function summarizeWeights(weights: LearnedDocument['weights']): { name: string; mean: number; min: number; max: number }[] {
  const perTensor = Object.values(weights);
  const names = Object.keys(perTensor[0] ?? {});
  return names
    .map((name) => {
      const alphas = perTensor.map((tensor) => tensor[name]!);
      return { name, mean: alphas.reduce((a, b) => a + b, 0) / alphas.length, min: Math.min(...alphas), max: Math.max(...alphas) };
    })
    .sort((a, b) => b.mean - a.mean || (a.name < b.name ? -1 : 1));
}

const alpha = (value: number): string => value.toFixed(3);

/** The learned soup for a person: the training run epoch by epoch, the weights it found, the outcome. */
export function printLearned(terminal: Terminal, doc: LearnedJson<LearnedDocument>, about: { source: string; evaluator: string; format: string }): void {
  const { paint } = terminal;
  const h = doc.hyperparameters;
  terminal.print(
    `${paint.bold('Learned soup')} of ${doc.chosen.length} ingredients, ${doc.metric} (${describeDirection(doc.direction)}) on ${about.source}, ${about.evaluator}`,
  );
  terminal.print(
    `AdamW lr ${h.lr}, weight decay ${h.weightDecay}, ${h.epochs} epoch${h.epochs === 1 ? '' : 's'} of batches of ${h.batchSize}, seed ${h.seed}; ` +
      `${h.byModel ? 'one weight per ingredient' : 'one weight per tensor per ingredient'}; ${formatBytes(doc.memoryBytes)} of weights in memory`,
  );
  terminal.print();
  const rows = [
    [paint.dim('epoch'), paint.dim('loss'), paint.dim('beta')],
    ['0', '', h.initialBeta.toFixed(3)],
  ];
  for (const epoch of doc.epochs) rows.push([String(epoch.epoch), epoch.loss.toFixed(4), epoch.beta.toFixed(3)]);
  for (const line of table(rows, [true, true, true])) terminal.print(`  ${line}`);
  terminal.print();
  terminal.print(`Weights over ${Object.keys(doc.weights).length} tensors, largest first:`);
  const weightRows = [[paint.dim('ingredient'), paint.dim('mean'), paint.dim('min'), paint.dim('max'), paint.dim(doc.metric)]];
  const scores = new Map(doc.ingredients.map((ingredient) => [ingredient.name, ingredient.score]));
  for (const row of summarizeWeights(doc.weights))
    weightRows.push([row.name, alpha(row.mean), alpha(row.min), alpha(row.max), formatScore(scores.get(row.name)!)]);
  for (const line of table(weightRows, [false, true, true, true, true])) terminal.print(`  ${line}`);
  terminal.print();
  if (doc.leftOut.length > 0) terminal.print(`Left out (diverged): ${doc.leftOut.join(', ')}`);
  const best =
    bestScore(
      doc.direction,
      doc.ingredients.filter((ingredient) => ingredient.diverged === undefined).map((ingredient) => ingredient.score),
    ) ?? NaN;
  const signed = (value: number): string => `${value >= 0 ? '+' : ''}${formatScore(value)}`;
  terminal.print(
    `Score:  ${paint.bold(formatScore(doc.score))} ${doc.metric} (uniform soup ${formatScore(doc.uniformScore)}, ${signed(doc.score - doc.uniformScore)}; ` +
      `best ingredient ${formatScore(best)}, ${signed(doc.score - best)})`,
  );
  terminal.print(`Wrote:  ${paint.cyan(doc.output)} (${about.format}; alphas, beta and hyperparameters in its metadata) in ${formatSeconds(doc.seconds)}`);
}
