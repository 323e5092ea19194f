import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Chalk } from 'chalk';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { compareMarkdown, compareTable } from '../../src/report/compare.js';
import { comparePlot } from '../../src/report/plot.js';
import type { CompareDocument } from '../../src/soup/compare-document.js';

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
  it('writes a GitHub table with the best of each column in bold and the gates', () => {
    assert.equal(
      compareMarkdown(document),
      [
        '### soup compare: accuracy',
        '',
        '| model | kind | val | test |',
        '| --- | --- | ---: | ---: |',
        '| run\\|a | ingredient, in greedy soup | 0.8000 | 0.7900 |',
        '| run-b | ingredient, in greedy soup | 0.8200 | 0.8100 |',
        '| **uniform soup** | uniform | 0.7000 | 0.6900 |',
        '| **greedy soup** | greedy | **0.8300** | 0.8000 |',
        '| **ensemble** | ensemble | 0.8250 | **0.8150** |',
        '',
        'The best of each column is in bold. The greedy soup was chosen on val only.',
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
    for (const label of ['uniform soup', 'greedy soup', 'ensemble', 'accuracy on val', 'mean accuracy on test', 'Model soups: accuracy']) {
      assert.ok(texts.includes(label), `missing ${label} in ${texts.join(' / ')}`);
    }
    assert.ok(texts.includes('run|a'), 'names are escaped, not dropped');
  });
});
