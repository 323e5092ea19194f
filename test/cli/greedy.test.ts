import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { runSoup } from '../helpers/cli.js';
import { halfwayScorer } from '../helpers/scorer.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const ingredients = path.join(fixtures, 'ingredients');
const val = path.join(fixtures, 'data', 'val');

describe('soup greedy', () => {
  it('beats the best single ingredient on the shipped fixtures and reports it as JSON', async () => {
    const out = path.join(dir, 'greedy-soup');
    const result = await runSoup(['greedy', ingredients, '--val', val, '-o', out, '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.strategy, 'greedy');
    assert.equal(doc.metric, 'accuracy');
    assert.equal(doc.backend, 'wasm');
    assert.equal(doc.ingredients.length, 8);
    assert.deepEqual(Object.keys(doc.ingredients[0]), ['name', 'path', 'score']);
    assert.equal(doc.steps.length, 7);
    assert.deepEqual(Object.keys(doc.steps[0]), ['candidate', 'score', 'accepted']);
    assert.equal(doc.evaluations, 15, 'eight ingredients and seven steps');
    const best = Math.max(...doc.ingredients.map((i: { score: number }) => i.score));
    assert.ok(doc.score > best, `greedy ${doc.score} should beat the best ingredient ${best}`);
    assert.ok(!doc.chosen.includes('lr3e-2-s8'), 'the too aggressive run is left out');
    assert.equal(doc.output, out);

    const soup = await TfjsCheckpoint.open(out);
    const recipe = readRecipe(soup)!;
    assert.equal(recipe.strategy, 'greedy');
    assert.deepEqual(recipe.chosen, doc.chosen);
    assert.equal(recipe.score, doc.score);
    assert.deepEqual(
      recipe.ingredients.map((i) => i.score),
      doc.ingredients.map((i: { score: number }) => i.score),
    );

    const check = await runSoup(['eval', out, '--val', val, '--json']);
    assert.equal(JSON.parse(check.stdout).metrics.accuracy, doc.score, 'the written soup scores what greedy measured');
  });

  it('scores ingredients on two worker threads with --jobs 2, with the same result', async () => {
    const serial = JSON.parse((await runSoup(['greedy', ingredients, '--val', val, '-o', path.join(dir, 'serial'), '--json', '--jobs', '1'])).stdout);
    const parallel = JSON.parse((await runSoup(['greedy', ingredients, '--val', val, '-o', path.join(dir, 'parallel'), '--json', '--jobs', '2'])).stdout);
    assert.equal(serial.jobs, 1);
    assert.equal(parallel.jobs, 2);
    assert.deepEqual(parallel.ingredients, serial.ingredients);
    assert.deepEqual(parallel.steps, serial.steps);
    assert.equal(parallel.samplesScored, serial.samplesScored);
  });

  it('stops scoring hopeless candidates early, with the same soup as full scoring', async () => {
    const pruned = JSON.parse((await runSoup(['greedy', ingredients, '--val', val, '-o', path.join(dir, 'pruned'), '--json'])).stdout);
    const full = JSON.parse((await runSoup(['greedy', ingredients, '--val', val, '-o', path.join(dir, 'full'), '--json', '--no-prune'])).stdout);
    assert.deepEqual(pruned.chosen, full.chosen);
    assert.equal(pruned.score, full.score);
    assert.deepEqual(
      pruned.steps.map((s: { accepted: boolean }) => s.accepted),
      full.steps.map((s: { accepted: boolean }) => s.accepted),
    );
    const stopped = pruned.steps.find((s: { pruned?: boolean }) => s.pruned);
    assert.equal(stopped.candidate, 'lr3e-2-s8', 'the soup spoiled by the aggressive run is stopped early');
    assert.ok(pruned.samplesSaved > 0);
    assert.equal(pruned.samplesScored + pruned.samplesSaved, full.samplesScored);
    assert.equal(full.samplesSaved, 0);
    const diff = await runSoup(['diff', path.join(dir, 'pruned'), path.join(dir, 'full')]);
    assert.equal(diff.code, 0, 'the two soups are identical');
  });

  it('shows the steps as a table with the chosen list, the score and the output', async () => {
    const out = path.join(dir, 'table-soup');
    const result = await runSoup(['greedy', ingredients, '--val', val, '-o', out, '--metric', 'loss']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Greedy soup of 8 ingredients, loss \(lower is better\) on val \(2000 samples\), tfjs \((wasm|node)\)$/m);
    assert.match(result.stdout, /^Steps:\n {2}candidate +score +change\s*\n {2}\S+ +\d\.\d{4} +start$/m);
    assert.match(result.stdout, /^ {2}lr3e-2-s8 +>= \d\.\d{4} +left out \(stopped early\)$/m);
    assert.match(result.stdout, /^Chosen: .+ \(\d of 8\)$/m);
    assert.match(result.stdout, /^Wrote: {2}.*table-soup \(tfjs; recipe and every score in its metadata\)/m);
  });

  it('scores with --eval-cmd, quoting a temporary path that holds spaces, quotes and $(...)', async () => {
    const runs = path.join(dir, 'cmd-runs');
    for (const [name, value] of [
      ['a', 0.25],
      ['b', 0.4375],
      ['c', 0.625],
      ['d', 0.75],
    ] as const) {
      await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [1], values: [value] } });
    }
    const evalCmd = await halfwayScorer(dir);
    const hostileTmp = path.join(dir, `tmp dir 'q' $(touch PWNED)`);
    await mkdir(hostileTmp);
    const out = path.join(dir, 'cmd-soup.safetensors');
    const result = await runSoup(['greedy', runs, '--eval-cmd', evalCmd, '-o', out, '--json'], {
      env: { TMPDIR: hostileTmp },
      cwd: dir,
    });
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.backend, 'command');
    assert.deepEqual(doc.chosen, ['b', 'c']);
    assert.equal(doc.score, 0.96875);
    assert.deepEqual(await readdir(hostileTmp), [], 'temporary checkpoints are removed');
    assert.ok(!(await readdir(dir)).includes('PWNED'), 'nothing in the path ran');
    const soup = await SafetensorsFile.open(out);
    assert.deepEqual([...(await soup.readFloats('w'))], [0.53125]);
    await soup.close();
  });

  it('needs --val or --eval-cmd, and --model for safetensors ingredients', async () => {
    const none = await runSoup(['greedy', ingredients, '-o', path.join(dir, 'x')]);
    assert.equal(none.code, 2);
    assert.equal(none.stderr, 'soup: error: say how to score candidates: --val DATA (TF.js and ONNX models) or --eval-cmd CMD (any framework)\n');
    const st = await writeSafetensorsFile(path.join(dir, 'st', 'a.safetensors'), { w: { dtype: 'F32', shape: [1], values: [1] } });
    const noModel = await runSoup(['greedy', st, '--val', val, '-o', path.join(dir, 'y.safetensors')]);
    assert.equal(noModel.code, 2);
    assert.match(
      noModel.stderr,
      /a safetensors checkpoint has no model architecture to run \(pass --model model\.onnx \(an ONNX export\) or --model model\.json/,
    );
  });

  it('points --val at an --eval-cmd without {data} and names only the flags greedy has', async () => {
    const result = await runSoup(['greedy', ingredients, '--eval-cmd', 'echo 1 # {ckpt}', '--val', val, '-o', path.join(dir, 'z.safetensors')]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: --eval-cmd has no {data}, so it cannot be pointed at ${val} (put {data} where the data set path goes, or leave out --val)\n`,
    );
  });
});

describe('soup eval', () => {
  it('prints every metric of one checkpoint as JSON', async () => {
    const result = await runSoup(['eval', path.join(ingredients, 'lr1e-4-s1'), '--val', path.join(fixtures, 'data', 'test.npz'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.n, 2000);
    assert.deepEqual(Object.keys(doc.metrics), ['accuracy', 'top5', 'loss', 'margin']);
    assert.ok(doc.metrics.accuracy > 0.8);
  });

  it('runs safetensors weights in a TF.js architecture given by --model', async () => {
    const converted = path.join(dir, 'converted.safetensors');
    assert.equal((await runSoup(['uniform', path.join(ingredients, 'lr1e-4-s1'), '-o', converted])).code, 0);
    const model = path.join(ingredients, 'lr1e-4-s1', 'model.json');
    const result = await runSoup(['eval', converted, '--model', model, '--val', val]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ {2}accuracy +0\.8420 {2}higher is better$/m);
  });

  it("refuses labels outside the model's classes with exit 2", async () => {
    const csv = path.join(dir, 'bad-labels.csv');
    await writeFile(csv, `label,${Array.from({ length: 784 }, (_, i) => `p${i}`).join(',')}\n12,${new Array(784).fill(0).join(',')}\n`);
    const result = await runSoup(['eval', path.join(ingredients, 'lr1e-4-s1'), '--val', csv]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /bad-labels\.csv: label 12 of sample 0 is outside the model's 10 classes/);
  });
});
