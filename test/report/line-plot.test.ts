import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { linePlot } from '../../src/report/line-plot.js';

describe('the line plot', () => {
  const svg = linePlot({
    title: 'From a <run> to b & c',
    xTitle: 't',
    yTitle: 'accuracy on val',
    points: [
      { x: 0, y: 0.84 },
      { x: 0.5, y: 0.6 },
      { x: 1, y: 0.82 },
    ],
    ends: ['a <run>', 'b & c'],
  });
  const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg);

  it('is well-formed, self-contained SVG with names escaped', () => {
    assert.equal(XMLValidator.validate(svg), true);
    assert.equal(parsed.svg.xmlns, 'http://www.w3.org/2000/svg');
    assert.doesNotMatch(svg, /href=|<script/);
    assert.match(svg, /From a &lt;run&gt; to b &amp; c/);
  });

  it('draws a mark per point, the curve through them and the chord between the ends', () => {
    assert.equal(parsed.svg.circle.length, 3);
    const curve = parsed.svg.polyline;
    assert.equal(curve.class, 'curve');
    assert.equal(curve.points.split(' ').length, 3);
    const chord = (parsed.svg.line as { class?: string; y1: string; y2: string }[]).find((line) => line.class === 'chord')!;
    const middle = Number(curve.points.split(' ')[1].split(',')[1]);
    assert.ok(middle > Number(chord.y1) && middle > Number(chord.y2), 'the dip is drawn below the chord (larger y)');
    const labels = (parsed.svg.text as { class?: string; '#text': string }[]).filter((t) => t.class === 'label').map((t) => t['#text']);
    assert.deepEqual(labels, ['a <run>', 'b & c']);
  });
});
