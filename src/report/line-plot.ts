import { escapeXml, range, ticks } from './plot.js';

const WIDTH = 720;
const HEIGHT = 480;
const MARGIN = { left: 80, right: 40, top: 56, bottom: 70 };
const LINE = '#1f77b4';

export interface LinePlot {
  title: string;
  xTitle: string;
  yTitle: string;
  /** hollow: a point measured on weights that are not finite (a diverged end point weighs in). */
  points: { x: number; y: number; hollow?: boolean }[];
  /** Labels of the first and last points. */
  ends?: [string, string];
  /** Draw the straight line between the end points (default); false when it would suggest a verdict that cannot be given. */
  chord?: boolean;
}

/**
 * A self-contained SVG line plot in the style of the compare plot: the curve with a mark at each
 * point, and a dashed straight line between its end points, so that a dip or a bump shows at a glance.
 */
export function linePlot(plot: LinePlot): string {
  const finite = plot.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const [xMin, xMax] = finite.length > 0 ? [Math.min(...finite.map((p) => p.x)), Math.max(...finite.map((p) => p.x))] : [0, 1];
  const [yMin, yMax] = range(finite.length > 0 ? finite.map((p) => p.y) : [0, 1]);
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right;
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom;
  const sx = (x: number): number => MARGIN.left + (xMax > xMin ? (x - xMin) / (xMax - xMin) : 0.5) * plotWidth;
  const sy = (y: number): number => MARGIN.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight;
  const xy = (p: { x: number; y: number }): string => `${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<title>${escapeXml(plot.title)}</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="28" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(plot.title)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotWidth}" height="${plotHeight}" fill="none" stroke="#333"/>`,
  ];
  for (const t of xMax > xMin ? ticks(xMin, xMax) : [xMin]) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" y1="${MARGIN.top}" x2="${x}" y2="${MARGIN.top + plotHeight + 5}" stroke="#eee"/>`);
    parts.push(`<text x="${x}" y="${MARGIN.top + plotHeight + 20}" text-anchor="middle">${t}</text>`);
  }
  for (const t of ticks(yMin, yMax)) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${MARGIN.left - 5}" y1="${y}" x2="${MARGIN.left + plotWidth}" y2="${y}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 9}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
  }
  parts.push(
    `<text class="x-title" x="${MARGIN.left + plotWidth / 2}" y="${HEIGHT - 22}" text-anchor="middle" font-size="13">${escapeXml(plot.xTitle)}</text>`,
  );
  parts.push(
    `<text class="y-title" transform="translate(22 ${MARGIN.top + plotHeight / 2}) rotate(-90)" text-anchor="middle" font-size="13">${escapeXml(plot.yTitle)}</text>`,
  );
  if (finite.length >= 2 && plot.chord !== false) {
    const [first, last] = [finite[0]!, finite[finite.length - 1]!];
    parts.push(
      `<line class="chord" x1="${sx(first.x).toFixed(1)}" y1="${sy(first.y).toFixed(1)}" x2="${sx(last.x).toFixed(1)}" y2="${sy(last.y).toFixed(1)}" stroke="#7f7f7f" stroke-dasharray="6 4"/>`,
    );
  }
  parts.push(`<polyline class="curve" points="${finite.map(xy).join(' ')}" fill="none" stroke="${LINE}" stroke-width="2"/>`);
  for (const p of finite) {
    const look = p.hollow === true ? `r="5" fill="white" stroke="${LINE}" stroke-width="2"` : `r="4" fill="${LINE}"`;
    const note = p.hollow === true ? ' (non-finite weights)' : '';
    parts.push(
      `<circle class="point" cx="${sx(p.x).toFixed(1)}" cy="${sy(p.y).toFixed(1)}" ${look}><title>${p.x.toFixed(2)}: ${p.y.toFixed(4)}${note}</title></circle>`,
    );
  }
  if (plot.ends !== undefined && finite.length >= 2) {
    const [first, last] = [finite[0]!, finite[finite.length - 1]!];
    parts.push(
      `<text class="label" x="${(sx(first.x) + 8).toFixed(1)}" y="${(sy(first.y) - 10).toFixed(1)}" text-anchor="start" font-weight="bold">${escapeXml(plot.ends[0])}</text>`,
    );
    parts.push(
      `<text class="label" x="${(sx(last.x) - 8).toFixed(1)}" y="${(sy(last.y) - 10).toFixed(1)}" text-anchor="end" font-weight="bold">${escapeXml(plot.ends[1])}</text>`,
    );
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
