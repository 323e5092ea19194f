import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Chalk } from 'chalk';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { compareMarkdown, compareTable } from '../../src/report/compare.js';
import { comparePlot } from '../../src/report/plot.js';
import type { CompareDocument } from '../../src/soup/strategies/compare-document.js';

const document: CompareDocument = {
  metric: 'accuracy',
  backend: 'wasm',
  datasets: ['val', 'test'],
  rows: [
    { name: 'run|a', kind: 'ingredient', scores: { val: 0.8, test: 0.79 }, inGreedy: true },
    { name: 'run-b', kind: 'ingredient', scores: { val: 0.82, test: 0.81 }, inGreedy: true },
    { name: 'uniform soup', kind: 'uniform', scores: { val: 0.7, test: 0.69 }, chosen: ['run|a', 'run-b'] },
    { name: 'greedy soup', kind: 'greedy', scores: { val: 0.83, test: 0.8 }, chosen: ['run-b', 'run|a'] },
    { name: 'ensemble', kind: 'ensemble', scores: { val: 0.825, test: 0.815 } },
  ],
  gates: [{ gate: '--fail-under 0.9', passed: false, detail: 'greedy soup scores 0.8300 accuracy on val, 0.0700 worse than 0.9' }],
};

describe('compareMarkdown', () => {
  it('writes a GitHub table, ingredients best first, with the best of each column in bold, and nothing else in bold, and the gates', () => {
    assert.equal(
      compareMarkdown(document),
      [
        '### soup compare: accuracy (higher is better)',
        '',
        '| model | kind | val | test |',
        '| --- | --- | ---: | ---: |',
        '| run-b | ingredient, in greedy soup | 0.8200 | 0.8100 |',
        '| run\\|a | ingredient, in greedy soup | 0.8000 | 0.7900 |',
        '| uniform soup | uniform | 0.7000 | 0.6900 |',
        '| greedy soup | greedy | **0.8300** | 0.8000 |',
        '| ensemble | ensemble | 0.8250 | **0.8150** |',
        '',
        'The best of each column (higher is better) is in bold. The greedy soup was chosen on val only.',
        'Greedy soup: run-b, run\\|a.',
        '',
        '| gate | result | detail |',
        '| --- | --- | --- |',
        '| `--fail-under 0.9` | ❌ failed | greedy soup scores 0.8300 accuracy on val, 0.0700 worse than 0.9 |',
        '',
      ].join('\n'),
    );
  });
});

describe('compareTable', () => {
  it('lists ingredients best first the way the metric points, lowest loss first, diverged runs last, then the soups in their order', () => {
    const losses: CompareDocument = {
      metric: 'eval_loss',
      direction: 'minimize',
      backend: 'command',
      datasets: ['val'],
      rows: [
        { name: 'ft-a/checkpoint-20', kind: 'ingredient', scores: { val: 0.58 } },
        { name: 'ft-b/checkpoint-20', kind: 'ingredient', scores: { val: NaN }, diverged: { tensor: 'fc1.weight', element: 0, value: 'NaN' } },
        { name: 'ft-c/checkpoint-20', kind: 'ingredient', scores: { val: 0.53 }, inGreedy: true },
        { name: 'ft-d', kind: 'ingredient', scores: { val: 0.78 } },
        { name: 'uniform soup', kind: 'uniform', scores: { val: 0.54 }, leftOut: ['ft-b/checkpoint-20'] },
        { name: 'greedy soup', kind: 'greedy', scores: { val: 0.53 }, chosen: ['ft-c/checkpoint-20'], leftOut: ['ft-b/checkpoint-20'] },
      ],
    };
    const lines = compareTable(losses, new Chalk({ level: 0 }));
    assert.deepEqual(
      lines.slice(1).map((line) => line.split(/ {2,}/)[0]),
      ['ft-c/checkpoint-20', 'ft-a/checkpoint-20', 'ft-d', 'ft-b/checkpoint-20', 'uniform soup', 'greedy soup'],
    );
    assert.deepEqual(
      compareMarkdown(losses)
        .split('\n')
        .filter((line) => line.startsWith('| ') && !line.startsWith('| model') && !line.startsWith('| ---'))
        .map((line) => line.split(' | ')[0]),
      ['| ft-c/checkpoint-20', '| ft-a/checkpoint-20', '| ft-d', '| ft-b/checkpoint-20', '| uniform soup', '| greedy soup'],
    );
  });

  it('marks the best of each column with a star', () => {
    const lines = compareTable(document, new Chalk({ level: 0 }));
    assert.match(lines[4]!, /^greedy soup +greedy +\*0\.8300 +0\.8000$/);
    assert.match(lines[5]!, /^ensemble +ensemble +0\.8250 +\*0\.8150$/);
  });
});

describe('comparePlot', () => {
  const svg = comparePlot(document);
  const parsed = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(svg);
  const texts = (parsed.svg.text as ({ '#text': string | number; class?: string } | string)[]).map((t) => (typeof t === 'string' ? t : String(t['#text'])));

  it('is well-formed, self-contained SVG', () => {
    assert.equal(XMLValidator.validate(svg), true);
    assert.equal(parsed.svg.xmlns, 'http://www.w3.org/2000/svg');
    assert.doesNotMatch(svg, /href=|<script/);
  });

  it('marks ingredients as points and the soups and ensemble with their own shapes', () => {
    const classes = (tag: string) => [parsed.svg[tag]].flat().map((node: { class?: string }) => node.class);
    assert.deepEqual(classes('circle'), ['ingredient', 'ingredient']);
    assert.deepEqual(classes('rect').filter(Boolean), ['uniform']);
    assert.deepEqual(classes('polygon').sort(), ['ensemble', 'greedy']);
  });

  it('labels the soups, the ensemble and the axes', () => {
    for (const label of ['uniform soup', 'greedy soup', 'ensemble', 'accuracy on val', 'mean accuracy on test', 'Model soups: accuracy (higher is better)']) {
      assert.ok(texts.includes(label), `missing ${label} in ${texts.join(' / ')}`);
    }
    assert.ok(texts.includes('run|a'), 'names are escaped, not dropped');
  });
});

/** A sweep scored on eval_loss where one run diverged: its loss is NaN (null in JSON), and the soups leave it out. */
const lossDocument: CompareDocument = {
  metric: 'eval_loss',
  direction: 'minimize',
  backend: 'command',
  datasets: ['val'],
  rows: [
    { name: 'run-a', kind: 'ingredient', scores: { val: 0.4 }, inGreedy: true },
    { name: 'run-b', kind: 'ingredient', scores: { val: 0.35 }, inGreedy: true },
    { name: 'run-nan', kind: 'ingredient', scores: { val: NaN }, inGreedy: false, diverged: { tensor: 'fc1.weight', element: 3, value: 'NaN' } },
    { name: 'uniform soup', kind: 'uniform', scores: { val: 0.34 }, chosen: ['run-a', 'run-b'], leftOut: ['run-nan'] },
    { name: 'greedy soup', kind: 'greedy', scores: { val: 0.33 }, chosen: ['run-b', 'run-a'], leftOut: ['run-nan'] },
  ],
};

describe('compareMarkdown and compareTable for a lower-is-better metric with a diverged run', () => {
  it('bolds the lowest loss, marks the diverged run and says which runs the soups left out', () => {
    const markdown = compareMarkdown(lossDocument);
    assert.match(markdown, /^### soup compare: eval_loss \(lower is better\)$/m);
    assert.match(markdown, /^\| run-nan \| ingredient, diverged \(NaN in fc1\.weight\) \| NaN \|$/m);
    assert.match(markdown, /^\| uniform soup \| uniform, without run-nan \| 0\.3400 \|$/m);
    assert.match(markdown, /^\| greedy soup \| greedy, without run-nan \| \*\*0\.3300\*\* \|$/m);
    assert.equal(markdown.match(/\*\*/g)?.length, 2, 'one bold cell: the best of the one column');
    assert.match(markdown, /^The best of each column \(lower is better\) is in bold\./m);
    const lines = compareTable(lossDocument, new Chalk({ level: 0 }));
    assert.match(lines[3]!, /^run-nan +ingredient, diverged \(NaN in fc1\.weight\) +NaN$/);
    assert.match(lines[5]!, /^greedy soup +greedy, without run-nan +\*0\.3300$/);
  });
});

/** The boxes the plot's labels take, from their position, anchor and length (the same 6.6 px per character the plot assumes). */
function labelBoxes(svg: string): { text: string; x: number; y: number; width: number; height: number }[] {
  return [...svg.matchAll(/<text class="label" x="([\d.-]+)" y="([\d.-]+)" text-anchor="(start|end)"[^>]*>([^<]*)<\/text>/g)].map((match) => {
    const width = match[4]!.length * 6.6 + 4;
    const x = match[3] === 'start' ? Number(match[1]) : Number(match[1]) - width;
    return { text: match[4]!, x, y: Number(match[2]) - 11, width, height: 14 };
  });
}

function overlapping(svg: string): string[] {
  const boxes = labelBoxes(svg);
  const out: string[] = [];
  for (const [i, a] of boxes.entries()) {
    for (const b of boxes.slice(i + 1)) {
      if (a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height) out.push(`${a.text} / ${b.text}`);
    }
  }
  return out;
}

describe('comparePlot with a diverged run', () => {
  const document: CompareDocument = {
    metric: 'accuracy',
    direction: 'maximize',
    backend: 'wasm',
    datasets: ['val', 'test'],
    rows: [
      ...['lr1e-4-s1', 'lr1e-4-s2', 'lr3e-4-s1', 'lr3e-4-s2', 'lr1e-3-s1', 'lr1e-3-s2'].map((name, i) => ({
        name,
        kind: 'ingredient' as const,
        scores: { val: 0.84 + i * 0.002, test: 0.83 + (i % 3) * 0.002 },
        inGreedy: i < 3,
      })),
      { name: 'lr1e-2-s1', kind: 'ingredient', scores: { val: 0, test: 0 }, inGreedy: false, diverged: { tensor: 'dense/kernel', element: 0, value: 'NaN' } },
      { name: 'uniform soup', kind: 'uniform', scores: { val: 0.851, test: 0.836 }, chosen: [], leftOut: ['lr1e-2-s1'] },
      { name: 'greedy soup', kind: 'greedy', scores: { val: 0.852, test: 0.836 }, chosen: [], leftOut: ['lr1e-2-s1'] },
      { name: 'ensemble', kind: 'ensemble', scores: { val: 0.851, test: 0.837 }, leftOut: ['lr1e-2-s1'] },
    ],
  };
  const svg = comparePlot(document);
  const ticks = (axis: 'x' | 'y') =>
    [...svg.matchAll(/<text class="tick" x="[\d.]+" y="[\d.]+" text-anchor="(middle|end)"[^>]*>([^<]*)<\/text>/g)]
      .filter((match) => (match[1] === 'middle') === (axis === 'x'))
      .map((match) => Number(match[2]));

  it('spans the axes over the runs that did not diverge, and draws the diverged one hollow at the edge', () => {
    assert.equal(XMLValidator.validate(svg), true);
    for (const axis of ['x', 'y'] as const) {
      const values = ticks(axis);
      assert.ok(values.length >= 4 && values.length <= 9, `${values.length} ticks on ${axis}: ${values.join(', ')}`);
      assert.ok(
        values.every((value) => value > 0.8),
        `the ${axis} axis is not stretched to the diverged run's 0: ${values.join(', ')}`,
      );
    }
    const outlier = /<circle class="outlier" cx="([\d.]+)" cy="([\d.]+)"/.exec(svg);
    assert.ok(outlier !== null, 'the diverged run is drawn');
    assert.equal(Number(outlier[1]), 80, 'on the left edge (its accuracy is below the axis)');
    assert.equal(Number(outlier[2]), 520 - 70, 'on the bottom edge');
    assert.ok(labelBoxes(svg).some((box) => box.text === 'lr1e-2-s1 (diverged)'));
    assert.match(svg, /hollow: diverged or not a number \(at the edge when off the axes\)/);
  });

  it('never lets two labels overlap, and names every soup somewhere', () => {
    assert.deepEqual(overlapping(svg), []);
    const labelled = new Set(labelBoxes(svg).map((box) => box.text));
    for (const soup of ['uniform soup', 'greedy soup', 'ensemble']) {
      assert.ok(labelled.has(soup) || new RegExp(`not labelled for want of room: .*${soup}`).test(svg), `${soup} is labelled or listed`);
    }
  });

  it('has between 4 and 9 ticks per axis over any span', async () => {
    const { ticks: tickValues } = await import('../../src/report/plot.js');
    const fc = (await import('fast-check')).default;
    fc.assert(
      fc.property(fc.double({ min: -1000, max: 1000, noNaN: true }), fc.double({ min: 1e-6, max: 1000, noNaN: true }), (min, span) => {
        const values = tickValues(min, min + span);
        assert.ok(values.length >= 4 && values.length <= 9, `${values.length} ticks over [${min}, ${min + span}]`);
      }),
    );
  });
});
