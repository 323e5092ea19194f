import type { ChalkInstance } from 'chalk';
import { bestScore, byScore, describeDirection, knownDirection, type Direction } from '../eval/metrics.js';
import type { CompareDocument } from '../soup/strategies/compare-document.js';
import { table } from './format.js';
import { formatScore } from '../recipe/scores.js';

type Row = CompareDocument['rows'][number];

/** Which way the document's metric points (documents from before soup recorded it: the name's). */
export function directionOf(document: CompareDocument): Direction {
  return document.direction ?? knownDirection(document.metric) ?? 'maximize';
}

/** The best finite value of each data set's column, whichever way the metric points; diverged runs do not count. */
export function bestPerColumn(document: CompareDocument): Record<string, number> {
  const best: Record<string, number> = {};
  const direction = directionOf(document);
  for (const dataset of document.datasets) {
    const values = document.rows
      .filter((row) => row.diverged === undefined)
      .map((row) => row.scores[dataset])
      .filter((v): v is number => v !== undefined && Number.isFinite(v));
    const top = bestScore(direction, values);
    if (top !== undefined) best[dataset] = top;
  }
  return best;
}

/**
 * The rows as the tables show them: ingredients best first on the validation set (the way the metric
 * points, so lowest loss first), diverged runs last, then the soups and the ensemble in their order.
 */
export function rowsBestFirst(document: CompareDocument): Row[] {
  const validation = document.datasets[0];
  const order = byScore(directionOf(document));
  const score = (row: Row): number => (validation === undefined ? NaN : (row.scores[validation] ?? NaN));
  const ingredients = document.rows
    .filter((row) => row.kind === 'ingredient')
    .sort((a, b) => Number(a.diverged !== undefined) - Number(b.diverged !== undefined) || order(score(a), score(b)));
  return [...ingredients, ...document.rows.filter((row) => row.kind !== 'ingredient')];
}

const kindLabel = (row: Row): string => {
  if (row.kind !== 'ingredient') return row.leftOut === undefined ? row.kind : `${row.kind}, without ${row.leftOut.join(', ')}`;
  if (row.diverged !== undefined) return `ingredient, diverged (${row.diverged.value} in ${row.diverged.tensor})`;
  return row.inGreedy ? 'ingredient, in greedy soup' : 'ingredient';
};

/** The comparison as terminal lines: one row per model, one column per data set, the best marked with *. */
export function compareTable(document: CompareDocument, paint: ChalkInstance): string[] {
  const best = bestPerColumn(document);
  const header = ['model', 'kind', ...document.datasets].map((cell) => paint.dim(cell));
  const rows = rowsBestFirst(document).map((row) => [
    row.kind === 'ingredient' ? row.name : paint.bold(row.name),
    kindLabel(row),
    ...document.datasets.map((dataset) => {
      const value = row.scores[dataset];
      if (value === undefined) return '-';
      return row.diverged === undefined && value === best[dataset] ? paint.green(`*${formatScore(value)}`) : ` ${formatScore(value)}`;
    }),
  ]);
  return table([header, ...rows], [false, false, ...document.datasets.map(() => true)]);
}

const escapeMarkdown = (text: string): string => text.replace(/[|\\`*_]/g, (c) => `\\${c}`);

/** A GitHub-flavoured Markdown report for a pull-request comment or a job summary. */
export function compareMarkdown(document: CompareDocument): string {
  const best = bestPerColumn(document);
  const lines = [
    `### soup compare: ${document.metric} (${describeDirection(directionOf(document))})`,
    '',
    `| model | kind | ${document.datasets.map(escapeMarkdown).join(' | ')} |`,
    `| --- | --- | ${document.datasets.map(() => '---:').join(' | ')} |`,
  ];
  for (const row of rowsBestFirst(document)) {
    const cells = document.datasets.map((dataset) => {
      const value = row.scores[dataset];
      if (value === undefined) return '–';
      return row.diverged === undefined && value === best[dataset] ? `**${formatScore(value)}**` : formatScore(value);
    });
    // Bold is kept for the best scores alone, as the legend says; soups are told apart by their kind.
    lines.push(`| ${escapeMarkdown(row.name)} | ${escapeMarkdown(kindLabel(row))} | ${cells.join(' | ')} |`);
  }
  lines.push(
    '',
    `The best of each column (${describeDirection(directionOf(document))}) is in bold. The greedy soup was chosen on ${escapeMarkdown(document.datasets[0]!)} only.`,
  );
  const greedy = document.rows.find((row) => row.kind === 'greedy');
  if (greedy?.chosen !== undefined) lines.push(`Greedy soup: ${greedy.chosen.map(escapeMarkdown).join(', ')}.`);
  for (const note of document.notes ?? []) lines.push('', `_Note: ${escapeMarkdown(note)}_`);
  if (document.gates !== undefined && document.gates.length > 0) {
    lines.push('', '| gate | result | detail |', '| --- | --- | --- |');
    for (const gate of document.gates) lines.push(`| \`${gate.gate}\` | ${gate.passed ? '✅ passed' : '❌ failed'} | ${escapeMarkdown(gate.detail)} |`);
  }
  return `${lines.join('\n')}\n`;
}
