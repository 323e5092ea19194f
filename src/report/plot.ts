import { higherIsBetter } from '../eval/metrics.js';
import type { CompareDocument } from '../soup/compare-document.js';

const WIDTH = 720;
const HEIGHT = 520;
const MARGIN = { left: 80, right: 40, top: 56, bottom: 70 };

export const escapeXml = (text: string): string =>
  text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

interface Point {
  name: string;
  kind: CompareDocument['rows'][number]['kind'];
  x: number;
  y: number;
}

/** Evenly spaced tick values across [min, max] at a round step. */
export function ticks(min: number, max: number): number[] {
  const span = max - min;
  const rough = span / 5;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough) ?? rough;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

export function range(values: number[]): [number, number] {
  const min = Math.min(...values);
  const max = Math.max(...values);
  const pad = max > min ? (max - min) * 0.12 : 0.01;
  return [min - pad, max + pad];
}

const MARKS: Record<Point['kind'], { colour: string; label: string }> = {
  ingredient: { colour: '#7f7f7f', label: 'ingredient' },
  uniform: { colour: '#1f77b4', label: 'uniform soup' },
  greedy: { colour: '#d62728', label: 'greedy soup' },
  ensemble: { colour: '#2ca02c', label: 'ensemble' },
};

function mark(point: Point, cx: number, cy: number): string {
  const { colour } = MARKS[point.kind];
  const title = `<title>${escapeXml(point.name)}: ${point.x.toFixed(4)}, ${point.y.toFixed(4)}</title>`;
  switch (point.kind) {
    case 'ingredient':
      return `<circle class="ingredient" cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="5" fill="${colour}" fill-opacity="0.8">${title}</circle>`;
    case 'uniform':
      return `<rect class="uniform" x="${(cx - 7).toFixed(1)}" y="${(cy - 7).toFixed(1)}" width="14" height="14" fill="${colour}">${title}</rect>`;
    case 'ensemble':
      return `<polygon class="ensemble" points="${cx.toFixed(1)},${(cy - 9).toFixed(1)} ${(cx + 8).toFixed(1)},${(cy + 6).toFixed(1)} ${(cx - 8).toFixed(1)},${(cy + 6).toFixed(1)}" fill="${colour}">${title}</polygon>`;
    case 'greedy': {
      const star = Array.from({ length: 10 }, (_, i) => {
        const r = i % 2 === 0 ? 11 : 4.5;
        const angle = -Math.PI / 2 + (i * Math.PI) / 5;
        return `${(cx + r * Math.cos(angle)).toFixed(1)},${(cy + r * Math.sin(angle)).toFixed(1)}`;
      });
      return `<polygon class="greedy" points="${star.join(' ')}" fill="${colour}">${title}</polygon>`;
    }
  }
}

interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

const overlaps = (a: Box, b: Box): boolean => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

/**
 * Labels placed beside their marks without overlapping one another: soups first (they are always
 * labelled), then ingredients where there is room; every mark also carries its name as a tooltip.
 */
function labels(marks: { point: Point; cx: number; cy: number }[]): string[] {
  const taken: Box[] = [];
  const out: string[] = [];
  const byPriority = [...marks].sort((a, b) => Number(a.point.kind === 'ingredient') - Number(b.point.kind === 'ingredient'));
  for (const { point, cx, cy } of byPriority) {
    const width = point.name.length * 6.6 + 4;
    const spots = [
      { x: cx + 10, y: cy - 20, anchor: 'start' },
      { x: cx - 10 - width, y: cy - 20, anchor: 'end' },
      { x: cx + 10, y: cy + 6, anchor: 'start' },
      { x: cx - 10 - width, y: cy + 6, anchor: 'end' },
    ];
    const spot = spots.find((candidate) => !taken.some((box) => overlaps(box, { ...candidate, width, height: 14 })));
    if (spot === undefined && point.kind === 'ingredient') continue;
    const chosen = spot ?? spots[0]!;
    taken.push({ x: chosen.x, y: chosen.y, width, height: 14 });
    const textX = chosen.anchor === 'start' ? chosen.x : chosen.x + width;
    const weight = point.kind === 'ingredient' ? '' : ' font-weight="bold"';
    out.push(
      `<text class="label" x="${textX.toFixed(1)}" y="${(chosen.y + 11).toFixed(1)}" text-anchor="${chosen.anchor}" fill="${MARKS[point.kind].colour}"${weight}>${escapeXml(point.name)}</text>`,
    );
  }
  return out;
}

/**
 * The paper's Figure 1 as a self-contained SVG: validation score on x, the mean of the test sets on
 * y (validation again when there are none), ingredients as points, the soups and the ensemble marked.
 */
export function comparePlot(document: CompareDocument): string {
  const [validation, ...tests] = document.datasets as [string, ...string[]];
  const yOf = (scores: Record<string, number>): number | undefined => {
    const values = (tests.length > 0 ? tests : [validation]).map((d) => scores[d]);
    return values.some((v) => v === undefined) ? undefined : values.reduce((a, b) => a! + b!, 0)! / values.length;
  };
  const points: Point[] = [];
  for (const row of document.rows) {
    const x = row.scores[validation];
    const y = yOf(row.scores);
    if (x !== undefined && y !== undefined && Number.isFinite(x) && Number.isFinite(y)) points.push({ name: row.name, kind: row.kind, x, y });
  }
  const [xMin, xMax] = range(points.map((p) => p.x));
  const [yMin, yMax] = range(points.map((p) => p.y));
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number): number => MARGIN.left + ((x - xMin) / (xMax - xMin)) * plotWidth;
  const sy = (y: number): number => MARGIN.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight;
  const metric = `${document.metric}${higherIsBetter(document.metric) ? '' : ' (lower is better)'}`;
  const yTitle = tests.length > 0 ? `mean ${metric} on ${tests.join(', ')}` : `${metric} on ${validation}`;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>Model soups: ${escapeXml(metric)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">Model soups: ${escapeXml(document.metric)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
  ];
  for (const t of ticks(xMin, xMax)) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${MARGIN.top + plotHeight}" x2="${x}" y2="${MARGIN.top + plotHeight + 5}" stroke="#333"/>`);
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight}" stroke="#eee"/>`);
    parts.push(`<text x="${x}" y="${MARGIN.top + plotHeight + 20}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left}" y2="${y}" stroke="#333"/>`);
    parts.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 9}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
  }
  parts.push(`<text class="x-title" x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 22}" text-anchor="middle" font-size="13">${escapeXml(`${metric} on ${validation}`)}</text>`);
  parts.push(
    `<text class="y-title" transform="translate(22 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="13">${escapeXml(yTitle)}</text>`,
  );
  // Soups last, so they sit on top of the ingredient points.
  const order: Point['kind'][] = ['ingredient', 'ensemble', 'uniform', 'greedy'];
  const placed = [...points].sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  for (const point of placed) parts.push(mark(point, sx(point.x), sy(point.y)));
  parts.push(...labels(placed.map((point) => ({ point, cx: sx(point.x), cy: sy(point.y) }))));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
