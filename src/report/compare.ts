import type { ChalkInstance } from 'chalk';
import { higherIsBetter } from '../eval/metrics.js';
import type { CompareDocument } from '../soup/compare-document.js';
import { table } from './format.js';
import { formatScore } from './scores.js';

type Row = CompareDocument['rows'][number];

/** The best value of each data set's column, whichever way the metric points. */
export function bestPerColumn(document: CompareDocument): Record<string, number> {
  const best: Record<string, number> = {};
  const higher = higherIsBetter(document.metric);
  for (const dataset of document.datasets) {
    const values = document.rows.map((row) => row.scores[dataset]).filter((v): v is number => v !== undefined && !Number.isNaN(v));
    best[dataset] = higher ? Math.max(...values) : Math.min(...values);
  }
  return best;
}

const kindLabel = (row: Row): string => (row.kind === 'ingredient' ? (row.inGreedy ? 'ingredient, in greedy soup' : 'ingredient') : row.kind);

/** The comparison as terminal lines: one row per model, one column per data set, the best marked with *. */
export function compareTable(document: CompareDocument, paint: ChalkInstance): string[] {
  const best = bestPerColumn(document);
  const header = ['model', 'kind', ...document.datasets].map((cell) => paint.dim(cell));
  const rows = document.rows.map((row) => [
    row.kind === 'ingredient' ? row.name : paint.bold(row.name),
    kindLabel(row),
    ...document.datasets.map((dataset) => {
      const value = row.scores[dataset];
      if (value === undefined) return '-';
      return value === best[dataset] ? paint.green(`*${formatScore(value)}`) : ` ${formatScore(value)}`;
    }),
  ]);
  return table([header, ...rows], [false, false, ...document.datasets.map(() => true)]);
}

const escapeMarkdown = (text: string): string => text.replace(/[|\\`*_]/g, (c) => `\\${c}`);

/** A GitHub-flavoured Markdown report for a pull-request comment or a job summary. */
export function compareMarkdown(document: CompareDocument): string {
  const best = bestPerColumn(document);
  const lines = [
    `### soup compare: ${document.metric}${higherIsBetter(document.metric) ? '' : ' (lower is better)'}`,
    '',
    `| model | kind | ${document.datasets.map(escapeMarkdown).join(' | ')} |`,
    `| --- | --- | ${document.datasets.map(() => '---:').join(' | ')} |`,
  ];
  for (const row of document.rows) {
    const cells = document.datasets.map((dataset) => {
      const value = row.scores[dataset];
      if (value === undefined) return '–';
      return value === best[dataset] ? `**${formatScore(value)}**` : formatScore(value);
    });
    const name = row.kind === 'ingredient' ? escapeMarkdown(row.name) : `**${escapeMarkdown(row.name)}**`;
    lines.push(`| ${name} | ${kindLabel(row)} | ${cells.join(' | ')} |`);
  }
  lines.push('', `The best of each column is in bold. The greedy soup was chosen on ${escapeMarkdown(document.datasets[0]!)} only.`);
  const greedy = document.rows.find((row) => row.kind === 'greedy');
  if (greedy?.chosen !== undefined) lines.push(`Greedy soup: ${greedy.chosen.map(escapeMarkdown).join(', ')}.`);
  for (const note of document.notes ?? []) lines.push('', `_Note: ${escapeMarkdown(note)}_`);
  if (document.gates !== undefined && document.gates.length > 0) {
    lines.push('', '| gate | result | detail |', '| --- | --- | --- |');
    for (const gate of document.gates) lines.push(`| \`${gate.gate}\` | ${gate.passed ? '✅ passed' : '❌ failed'} | ${escapeMarkdown(gate.detail)} |`);
  }
  return `${lines.join('\n')}\n`;
}
