import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { XMLValidator } from 'fast-xml-parser';
import { compareDocumentSchema, type CompareDocument } from '../../src/soup/strategies/compare-document.js';
import { runSoup, type RunResult } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const ingredients = path.join(fixtures, 'ingredients');
const val = path.join(fixtures, 'data', 'val');
const test = path.join(fixtures, 'data', 'test.npz');
const shifted = path.join(fixtures, 'data', 'test-shifted.npz');
const base = ['compare', ingredients, '--val', val, '--test', `test=${test}`, '--test', `shifted=${shifted}`];

describe('soup compare', () => {
  let run: RunResult;
  let doc: CompareDocument;
  before(async () => {
    run = await runSoup([
      ...base,
      '--json',
      '--markdown',
      path.join(dir, 'report.md'),
      '--plot',
      path.join(dir, 'plot.svg'),
      '--save-dir',
      path.join(dir, 'saved'),
      '--require-greedy-beats-best',
    ]);
    doc = compareDocumentSchema.parse(JSON.parse(run.stdout));
  });

  it('prints a JSON document that matches the published schema', () => {
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stderr, '');
    assert.equal(doc.metric, 'accuracy');
    assert.deepEqual(doc.datasets, ['val', 'test', 'shifted']);
    assert.deepEqual(
      doc.rows.map((row) => row.kind),
      [...new Array(8).fill('ingredient'), 'uniform', 'greedy', 'ensemble'],
    );
    for (const row of doc.rows) assert.deepEqual(Object.keys(row.scores), ['val', 'test', 'shifted']);
    assert.deepEqual(doc.gates, [
      { gate: '--require-greedy-beats-best', passed: true, detail: 'greedy soup 0.8460 vs best ingredient lr1e-4-s1 0.8420 on val' },
    ]);
  });

  it('reports the same uniform and greedy soups as soup uniform and soup greedy make', async () => {
    const uniformOut = path.join(dir, 'uniform-check');
    const greedyOut = path.join(dir, 'greedy-check');
    await runSoup(['uniform', ingredients, '-o', uniformOut]);
    const greedy = JSON.parse((await runSoup(['greedy', ingredients, '--val', val, '-o', greedyOut, '--json'])).stdout);
    const row = (kind: string) => doc.rows.find((r) => r.kind === kind)!;
    assert.deepEqual(row('greedy').chosen, greedy.chosen);
    assert.equal(row('greedy').scores.val, greedy.score);
    for (const [kind, out] of [
      ['uniform', uniformOut],
      ['greedy', greedyOut],
    ] as const) {
      for (const [name, data] of [
        ['val', val],
        ['test', test],
        ['shifted', shifted],
      ]) {
        const scored = JSON.parse((await runSoup(['eval', out, '--val', data!, '--json'])).stdout);
        assert.equal(row(kind).scores[name!], scored.metrics.accuracy, `${kind} on ${name}`);
      }
    }
  });

  it('writes a Markdown report, the plot and, with --save-dir, both soups', async () => {
    const markdown = await readFile(path.join(dir, 'report.md'), 'utf8');
    assert.match(markdown, /^### soup compare: accuracy \(higher is better\)\n\n\| model \| kind \| val \| test \| shifted \|\n/);
    assert.match(markdown, /^\| greedy soup \| greedy \| \*\*0\.8460\*\* \|/m);
    assert.equal(XMLValidator.validate(await readFile(path.join(dir, 'plot.svg'), 'utf8')), true);
    assert.deepEqual((await readdir(path.join(dir, 'saved'))).sort(), ['greedy-soup', 'uniform-soup']);
    assert.deepEqual(doc.saved, { uniform: path.join(dir, 'saved', 'uniform-soup'), greedy: path.join(dir, 'saved', 'greedy-soup') });
  });

  it('fails a --fail-under gate with exit 3, saying by how much', async () => {
    const result = await runSoup([...base, '--fail-under', '0.85']);
    assert.equal(result.code, 3);
    assert.match(result.stdout, /^FAIL --fail-under 0\.85: greedy soup scores 0\.8460 accuracy on val, 0\.0040 worse than 0\.85$/m);
    assert.equal(result.stderr, 'soup: error: 1 gate failed: --fail-under 0.85 (greedy soup scores 0.8460 accuracy on val, 0.0040 worse than 0.85)\n');
  });

  it('passes against its own baseline and fails against a better one', async () => {
    const baseline = path.join(dir, 'baseline.json');
    await writeFile(baseline, run.stdout);
    const same = await runSoup([...base, '--baseline', baseline, '--max-drop', '0']);
    assert.equal(same.code, 0, same.stderr);
    assert.match(same.stdout, /^PASS --baseline --max-drop 0: no soup dropped more than 0/m);
    const better = JSON.parse(run.stdout);
    better.rows.find((r: { kind: string }) => r.kind === 'greedy').scores.shifted += 0.05;
    await writeFile(baseline, JSON.stringify(better));
    const dropped = await runSoup([...base, '--baseline', baseline, '--max-drop', '0.01']);
    assert.equal(dropped.code, 3);
    assert.match(dropped.stderr, /--baseline --max-drop 0\.01 \(dropped more than 0\.01: greedy soup on shifted: 0\.4590 -> 0\.4090 \(drop 0\.0500\)\)/);
  });

  it('refuses a baseline that is not a compare document', async () => {
    const bogus = path.join(dir, 'bogus.json');
    await writeFile(bogus, '{"metric": "accuracy"}');
    const result = await runSoup([...base, '--baseline', bogus]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bogus\.json: not a soup compare --json document: backend: /);
  });

  it('scores with --eval-cmd, passing each data set as {data}, and says why there is no ensemble', async () => {
    const runs = path.join(dir, 'cmd-runs');
    for (const [name, value] of [
      ['a', 0.25],
      ['b', 0.75],
    ] as const) {
      await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [1], values: [value] } });
    }
    const scorer = path.join(dir, 'score.mjs');
    // The "data set" is a number in a file: the score is how close w gets to it.
    await writeFile(
      scorer,
      `import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const target = Number(readFileSync(process.argv[3], 'utf8'));
console.log(JSON.stringify({ accuracy: 1 - Math.abs(bytes.readFloatLE(8 + Number(bytes.readBigUInt64LE(0))) - target) }));
`,
    );
    await writeFile(path.join(dir, 'half.txt'), '0.5');
    await writeFile(path.join(dir, 'high.txt'), '0.75');
    const result = await runSoup([
      'compare',
      runs,
      '--eval-cmd',
      `node '${scorer}' {ckpt} {data}`,
      '--val',
      path.join(dir, 'half.txt'),
      '--test',
      `high=${path.join(dir, 'high.txt')}`,
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ {2}uniform soup +uniform +\*1\.0000 +0\.7500$/m);
    assert.match(result.stdout, /^Note: no ensemble row: it averages model outputs, and --eval-cmd returns only metrics\.$/m);
    const noData = await runSoup(['compare', runs, '--eval-cmd', `node '${scorer}' {ckpt}`, '--test', path.join(dir, 'high.txt')]);
    assert.equal(noData.code, 2);
    assert.match(noData.stderr, /--eval-cmd has no \{data\}, so it cannot be pointed at/);
  });
});
