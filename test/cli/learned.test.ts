import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { discoverIngredients, openAll, closeAll } from '../../src/checkpoint/discover.js';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const ingredients = path.join(fixtures, 'ingredients');
const val = path.join(fixtures, 'data', 'val');

/** A fixture checkpoint's accuracy on val, as `soup eval` measures it. */
async function accuracyOf(checkpoint: string): Promise<number> {
  const result = await runSoup(['eval', checkpoint, '--val', val, '--json', '--backend', 'wasm']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout).metrics.accuracy;
}

describe('soup learned', () => {
  it('beats the uniform soup on the fixtures, and writes exactly sum(alpha * theta) with the alphas it reports', async () => {
    const out = path.join(dir, 'learned-soup');
    const result = await runSoup(['learned', ingredients, '--val', val, '-o', out, '--epochs', '2', '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.strategy, 'learned');
    assert.equal(doc.metric, 'accuracy');
    assert.equal(doc.backend, 'wasm');
    assert.equal(doc.output, out);
    assert.equal(doc.ingredients.length, 8);
    assert.deepEqual(Object.keys(doc.ingredients[0]), ['name', 'path', 'score']);
    assert.deepEqual(
      doc.chosen,
      doc.ingredients.map((i: { name: string }) => i.name),
    );
    assert.deepEqual(doc.steps, [], "greedy's fields are there for scripts that read both shapes");
    assert.equal(doc.evaluations, 10, '8 ingredients, the soup before training and after');
    assert.equal(typeof doc.jobs, 'number');
    assert.deepEqual(
      doc.epochs.map((e: { epoch: number }) => e.epoch),
      [1, 2],
    );
    assert.ok(doc.epochs[1].loss < doc.epochs[0].loss, 'the loss goes down');
    assert.equal(doc.hyperparameters.lr, 0.05);
    assert.equal(doc.hyperparameters.batchSize, 256);
    assert.equal(typeof doc.beta, 'number');
    assert.notEqual(doc.beta, 1, 'beta is learned too');

    const uniform = path.join(dir, 'uniform-soup');
    const made = await runSoup(['uniform', ingredients, '-o', uniform]);
    assert.equal(made.code, 0, made.stderr);
    const uniformAccuracy = await accuracyOf(uniform);
    assert.equal(uniformAccuracy, 0.6435, 'the aggressive run spoils the uniform soup');
    assert.ok(doc.score > uniformAccuracy + 0.1, `learned ${doc.score} vs uniform ${uniformAccuracy}`);
    assert.equal(await accuracyOf(out), doc.score, 'the written soup scores what the command reported');

    const [soup, ...parts] = await openAll([...(await discoverIngredients([out])), ...(await discoverIngredients([ingredients]))]);
    try {
      assert.deepEqual(
        Object.keys(doc.weights),
        soup!.tensors().map((tensor) => tensor.name),
      );
      for (const [tensor, alphas] of Object.entries(doc.weights as Record<string, Record<string, number>>)) {
        const values = Object.values(alphas);
        assert.ok(Math.abs(values.reduce((a, b) => a + b, 0) - 1) < 1e-12, 'alphas sum to 1');
        const thetas = await Promise.all(parts.map((part) => part.readFloats(tensor)));
        const sums = new Float64Array(thetas[0]!.length);
        parts.forEach((part, k) => thetas[k]!.forEach((value, i) => (sums[i]! += alphas[part.name]! * value)));
        assert.deepEqual(await soup!.readFloats(tensor), Float32Array.from(sums), `${tensor} is sum(alpha * theta)`);
      }
      const recipe = readRecipe(soup!)!;
      assert.equal(recipe.strategy, 'learned');
      assert.deepEqual(recipe.weights, doc.weights);
      assert.equal(recipe.beta, doc.beta);
      assert.deepEqual(recipe.hyperparameters, { optimizer: 'AdamW', ...doc.hyperparameters });
    } finally {
      await closeAll([soup!, ...parts]);
    }
  });

  it('prints the epochs, the weights and the score for a person, and with --by-model one weight per ingredient', async () => {
    const out = path.join(dir, 'by-model');
    const result = await runSoup([
      'learned',
      path.join(ingredients, 'lr1e-4-s1'),
      path.join(ingredients, 'lr3e-2-s8'),
      '--val',
      val,
      '-o',
      out,
      '--epochs',
      '1',
      '--by-model',
      '--batch-size',
      '500',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Learned soup of 2 ingredients, accuracy \(higher is better\) on val \(2000 samples\), tfjs \((wasm|node|cpu)\)$/m);
    assert.match(
      result.stdout,
      /^AdamW lr 0\.05, weight decay 0, 1 epoch of batches of 500, seed 0; one weight per ingredient; 1\.02 MB of weights in memory$/m,
    );
    assert.match(result.stdout, /^ {6}1 {2}\d\.\d{4} {2}\d\.\d{3}$/m);
    assert.match(result.stdout, /^Weights over 4 tensors, largest first:$/m);
    assert.match(result.stdout, /^Score: {2}0\.\d{4} accuracy \(uniform soup 0\.\d{4}, [+-]0\.\d{4}; best ingredient 0\.8420, [+-]0\.\d{4}\)$/m);
    assert.match(result.stdout, new RegExp(`^Wrote: {2}${out} \\(tfjs; alphas, beta and hyperparameters in its metadata\\) in `, 'm'));
    const recipe = readRecipe(await TfjsCheckpoint.open(out))! as unknown as { weights: Record<string, Record<string, number>> };
    const perTensor = Object.values(recipe.weights).map((alphas) => JSON.stringify(alphas));
    assert.equal(new Set(perTensor).size, 1, 'every tensor has the same weights');
  });

  it('refuses past --max-memory, before reading any weight, and writes nothing', async () => {
    const out = path.join(dir, 'too-big');
    const result = await runSoup(['learned', ingredients, '--val', val, '-o', out, '--max-memory', '1M']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: the learned soup holds every ingredient's weights in memory: 8 ingredients need 2.24 MB, more than --max-memory 1.05 MB ` +
        `(raise --max-memory, use fewer ingredients, or make a greedy soup, which streams them: soup greedy ${ingredients} --val DATA -o OUT)\n`,
    );
    assert.ok(!(await readdir(dir)).includes('too-big'));
    const bad = await runSoup(['learned', ingredients, '--val', val, '-o', out, '--max-memory', 'lots']);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'soup: error: --max-memory: "lots" is not a size (e.g. 8G, 512M or a number of bytes)\n');
  });

  it('asks for a model to run when the ingredients have none', async () => {
    const runs = path.join(dir, 'st-runs');
    for (const seed of [1, 2]) await writeSafetensorsFile(path.join(runs, `run-${seed}.safetensors`), mlpTensors(seed));
    const safetensors = await runSoup(['learned', runs, '--val', val, '-o', path.join(dir, 'y.safetensors')]);
    assert.equal(safetensors.code, 2);
    assert.equal(
      safetensors.stderr,
      `soup: error: ${path.join(runs, 'run-1.safetensors')}: soup learned needs a model to run, and a safetensors checkpoint has none ` +
        '(pass --model model.json (a TF.js model, trained by gradients) or --model model.onnx (searched without gradients), whose weight names match the tensors; or score with --eval-cmd CMD)\n',
    );
  });

  it('searches with --model model.onnx without gradients (CMA-ES), never ending in an internal error', async () => {
    const model = new URL('../../../fixtures/onnx/lr1e-4-s1.onnx', import.meta.url).pathname;
    const out = path.join(dir, 'onnx-model.safetensors');
    const result = await runSoup(['learned', ingredients, '--model', model, '--val', val, '--evaluations', '4', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.optimizer, 'CMA-ES');
    assert.match(doc.backend, /^onnxruntime/);
    assert.ok((await readdir(dir)).includes('onnx-model.safetensors'));
  });
});
