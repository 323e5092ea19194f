import type { GenerationRecord } from '../soup/search/run.js';
import { escapeXml, range, ticks } from './plot.js';

const WIDTH = 720;
const HEIGHT = 480;
const MARGIN = { left: 80, right: 40, top: 56, bottom: 70 };
const SERIES = [
  { key: 'bestSoFar', label: 'best so far', colour: '#d62728' },
  { key: 'median', label: 'generation median', colour: '#1f77b4' },
] as const;

/** The convergence plot of a search: per generation, the best score so far and the generation's median (SVG, no script). */
export function searchPlot(generations: readonly GenerationRecord[], title: string, objective: string): string {
  const values = generations.flatMap((g) => SERIES.map((series) => g[series.key])).filter(Number.isFinite);
  const [yMin, yMax] = range(values.length > 0 ? values : [0, 1]);
  const xMax = Math.max(1, generations.length);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number): number => MARGIN.left + (xMax > 1 ? (x - 1) / (xMax - 1) : 0.5) * plotWidth;
  const sy = (y: number): number => MARGIN.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(title)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
  ];
  for (const t of xMax > 1 ? ticks(1, xMax).filter(Number.isInteger) : [1]) {
    const x = sx(t).toFixed(1);
    parts.push(`<text x="${x}" y="${MARGIN.top + plotHeight + 20}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 9}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
  }
  parts.push(`<text x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 22}" text-anchor="middle" font-size="13">generation</text>`);
  parts.push(`<text transform="translate(22 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="13">${escapeXml(objective)}</text>`);
  SERIES.forEach((series, i) => {
    const points = generations.filter((g) => Number.isFinite(g[series.key])).map((g) => `${sx(g.generation).toFixed(1)},${sy(g[series.key]).toFixed(1)}`);
    parts.push(`<polyline class="${series.key}" points="${points.join(' ')}" fill="none" stroke="${series.colour}" stroke-width="2"/>`);
    const y = MARGIN.top + 16 + i * 18;
    parts.push(`<line x1="${MARGIN.left + 12}" y1="${y}" x2="${MARGIN.left + 36}" y2="${y}" stroke="${series.colour}" stroke-width="2"/>`);
    parts.push(`<text x="${MARGIN.left + 42}" y="${y}" dominant-baseline="middle">${escapeXml(series.label)}</text>`);
  });
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
