import { describeDirection, type Direction } from '../eval/metrics.js';
import type { CompareDocument } from '../soup/strategies/compare-document.js';
import { directionOf } from './compare.js';

const WIDTH = 720;
const HEIGHT = 520;
const MARGIN = { left: 80, right: 40, top: 70, bottom: 70 };

export const escapeXml = (text: string): string =>
  text.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);

interface Point {
  name: string;
  kind: CompareDocument['rows'][number]['kind'];
  x: number;
  y: number;
  /** Diverged, or a score that is not a number: drawn hollow at the edge of the axes, which leave it out. */
  outlier: boolean;
  diverged: boolean;
}

/**
 * Tick values across [min, max] at a round step (1, 2, 2.5 or 5 times a power of ten), between 4 and
 * 9 of them: enough to read a value off the axis, few enough that their labels do not touch.
 */
export function ticks(min: number, max: number): number[] {
  const span = max - min;
  if (!(span > 0) || !Number.isFinite(span)) return Number.isFinite(min) ? [Number(min.toPrecision(6))] : [];
  const rough = span / 8;
  const magnitude = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= rough * (1 - 1e-9)) ?? rough;
  const out: number[] = [];
  for (let i = Math.ceil(min / step - 1e-9); i * step <= max + step * 1e-9; i++) out.push(Number((i * step).toFixed(10)));
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
  merge: { colour: '#9467bd', label: 'merge' },
};

function mark(point: Point, cx: number, cy: number): string {
  const { colour } = MARKS[point.kind];
  const title = `<title>${escapeXml(point.name)}${point.diverged ? ' (diverged)' : ''}: ${point.x.toFixed(4)}, ${point.y.toFixed(4)}</title>`;
  if (point.outlier) {
    return `<circle class="outlier" cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="6" fill="white" stroke="${colour}" stroke-width="2" stroke-dasharray="3 2">${title}</circle>`;
  }
  switch (point.kind) {
    case 'ingredient':
      return `<circle class="ingredient" cx="${cx.toFixed(1)}" cy="${cy.toFixed(1)}" r="5" fill="${colour}" fill-opacity="0.8">${title}</circle>`;
    case 'uniform':
      return `<rect class="uniform" x="${(cx - 7).toFixed(1)}" y="${(cy - 7).toFixed(1)}" width="14" height="14" fill="${colour}">${title}</rect>`;
    case 'ensemble':
      return `<polygon class="ensemble" points="${cx.toFixed(1)},${(cy - 9).toFixed(1)} ${(cx + 8).toFixed(1)},${(cy + 6).toFixed(1)} ${(cx - 8).toFixed(1)},${(cy + 6).toFixed(1)}" fill="${colour}">${title}</polygon>`;
    case 'merge':
      return `<polygon class="merge" points="${cx.toFixed(1)},${(cy - 8).toFixed(1)} ${(cx + 8).toFixed(1)},${cy.toFixed(1)} ${cx.toFixed(1)},${(cy + 8).toFixed(1)} ${(cx - 8).toFixed(1)},${cy.toFixed(1)}" fill="${colour}">${title}</polygon>`;
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

/** Where a label may go around its mark, nearest first: right, left, above, below, then further out. */
function spotsAround(cx: number, cy: number, width: number): { x: number; y: number; anchor: 'start' | 'end' }[] {
  const spots: { x: number; y: number; anchor: 'start' | 'end' }[] = [];
  for (const reach of [0, 14, 28, 42]) {
    spots.push(
      { x: cx + 10, y: cy - 7 - reach, anchor: 'start' },
      { x: cx - 10 - width, y: cy - 7 - reach, anchor: 'end' },
      { x: cx + 10, y: cy - 7 + reach, anchor: 'start' },
      { x: cx - 10 - width, y: cy - 7 + reach, anchor: 'end' },
      { x: cx - width / 2, y: cy - 24 - reach, anchor: 'start' },
      { x: cx - width / 2, y: cy + 10 + reach, anchor: 'start' },
    );
  }
  return spots;
}

/**
 * Labels placed beside their marks without overlapping one another, the marks, or the frame: soups and
 * outliers first, then ingredients where there is room. A soup with no room anywhere is named in a
 * list under the plot instead; every mark also carries its name as a tooltip.
 */
function labels(marks: { point: Point; cx: number; cy: number }[], frame: Box): { texts: string[]; unplaced: Point[] } {
  const taken: Box[] = marks.map(({ cx, cy }) => ({ x: cx - 7, y: cy - 7, width: 14, height: 14 }));
  const texts: string[] = [];
  const unplaced: Point[] = [];
  const priority = (point: Point): number => (point.kind !== 'ingredient' ? 0 : point.outlier ? 1 : 2);
  const byPriority = [...marks].sort((a, b) => priority(a.point) - priority(b.point));
  const inside = (box: Box): boolean =>
    box.x >= frame.x && box.y >= frame.y && box.x + box.width <= frame.x + frame.width && box.y + box.height <= frame.y + frame.height;
  for (const { point, cx, cy } of byPriority) {
    const text = point.diverged ? `${point.name} (diverged)` : point.outlier ? `${point.name} (not a number)` : point.name;
    const width = text.length * 6.6 + 4;
    const spot = spotsAround(cx, cy, width).find((candidate) => {
      const box = { ...candidate, width, height: 14 };
      return inside(box) && !taken.some((other) => overlaps(other, box));
    });
    if (spot === undefined) {
      if (point.kind !== 'ingredient') unplaced.push(point);
      continue;
    }
    taken.push({ x: spot.x, y: spot.y, width, height: 14 });
    const textX = spot.anchor === 'start' ? spot.x : spot.x + width;
    const weight = point.kind === 'ingredient' ? '' : ' font-weight="bold"';
    texts.push(
      `<text class="label" x="${textX.toFixed(1)}" y="${(spot.y + 11).toFixed(1)}" text-anchor="${spot.anchor}" fill="${MARKS[point.kind].colour}"${weight}>${escapeXml(text)}</text>`,
    );
  }
  return { texts, unplaced };
}

/**
 * The paper's Figure 1 as a self-contained SVG: validation score on x, the mean of the test sets on
 * y (validation again when there are none), ingredients as points, the soups and the ensemble marked.
 * The axes span the finite scores of runs that did not diverge, so one run gone to NaN (accuracy 0,
 * loss NaN) does not squeeze the others into a corner: it is drawn hollow at the edge, on its worse side.
 */
export function comparePlot(document: CompareDocument): string {
  const [validation, ...tests] = document.datasets as [string, ...string[]];
  const direction: Direction = directionOf(document);
  const yOf = (scores: Record<string, number>): number | undefined => {
    const values = (tests.length > 0 ? tests : [validation]).map((d) => scores[d]);
    return values.some((v) => v === undefined) ? undefined : values.reduce((a, b) => a! + b!, 0)! / values.length;
  };
  const points: Point[] = [];
  for (const row of document.rows) {
    const x = row.scores[validation];
    const y = yOf(row.scores);
    if (x === undefined || y === undefined) continue;
    const diverged = row.diverged !== undefined;
    points.push({ name: row.name, kind: row.kind, x, y, diverged, outlier: diverged || !Number.isFinite(x) || !Number.isFinite(y) });
  }
  const inliers = points.filter((p) => !p.outlier);
  const [xMin, xMax] = inliers.length > 0 ? range(inliers.map((p) => p.x)) : [0, 1];
  const [yMin, yMax] = inliers.length > 0 ? range(inliers.map((p) => p.y)) : [0, 1];
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  // An outlier sits on the edge: where its score lies beyond the axes, or, for NaN, on the worse side.
  const clamp = (value: number, min: number, max: number): number =>
    Number.isNaN(value) ? (direction === 'maximize' ? min : max) : Math.min(Math.max(value, min), max);
  const sx = (x: number): number => MARGIN.left + ((clamp(x, xMin, xMax) - xMin) / (xMax - xMin)) * plotWidth;
  const sy = (y: number): number => MARGIN.top + (1 - (clamp(y, yMin, yMax) - yMin) / (yMax - yMin)) * plotHeight;
  const metric = `${document.metric} (${describeDirection(direction)})`;
  const yTitle = tests.length > 0 ? `mean ${document.metric} on ${tests.join(', ')}` : `${document.metric} on ${validation}`;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>Model soups: ${escapeXml(metric)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">Model soups: ${escapeXml(metric)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
  ];
  for (const t of ticks(xMin, xMax)) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${MARGIN.top + plotHeight}" x2="${x}" y2="${MARGIN.top + plotHeight + 5}" stroke="#333"/>`);
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight}" stroke="#eee"/>`);
    parts.push(`<text class="tick" x="${x}" y="${MARGIN.top + plotHeight + 20}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left}" y2="${y}" stroke="#333"/>`);
    parts.push(`<line x1="${MARGIN.left}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text class="tick" x="${MARGIN.left - 9}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
  }
  parts.push(
    `<text class="x-title" x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 22}" text-anchor="middle" font-size="13">${escapeXml(`${document.metric} on ${validation}`)}</text>`,
  );
  parts.push(
    `<text class="y-title" transform="translate(22 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="13">${escapeXml(yTitle)}</text>`,
  );
  // Soups last, so they sit on top of the ingredient points.
  const order: Point['kind'][] = ['ingredient', 'ensemble', 'merge', 'uniform', 'greedy'];
  const placed = [...points].sort((a, b) => Number(b.outlier) - Number(a.outlier) || order.indexOf(a.kind) - order.indexOf(b.kind));
  for (const point of placed) parts.push(mark(point, sx(point.x), sy(point.y)));
  const frame = { x: MARGIN.left, y: MARGIN.top, width: plotWidth, height: plotHeight };
  const { texts, unplaced } = labels(
    placed.map((point) => ({ point, cx: sx(point.x), cy: sy(point.y) })),
    frame,
  );
  parts.push(...texts);
  const notes: string[] = [];
  if (points.some((p) => p.outlier)) notes.push('hollow: diverged or not a number (at the edge when off the axes)');
  if (unplaced.length > 0) notes.push(`not labelled for want of room: ${unplaced.map((p) => p.name).join(', ')}`);
  notes.forEach((note, i) => parts.push(`<text class="note" x="${MARGIN.left}" y="${46 + 14 * i}" font-size="11" fill="#555">${escapeXml(note)}</text>`));
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
