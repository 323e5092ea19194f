import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll } from '../../../src/checkpoint/discover.js';
import { LayerIndex } from '../../../src/soup/merge/methods/parameters.js';
import type { SearchEvaluationOptions } from '../../../src/soup/search/session.js';
import { evolveSoup, openEvolveRecipe, prepareEvolveFiles, writeEvolveFiles } from '../../../src/soup/strategies/evolve-soup.js';
import { prepareOutput, writeOutcome } from '../../../src/soup/write.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { distanceScorer } from '../../helpers/scorer.js';

const dir = await tempDir();
/** Runs of one 3-vector, one gone to infinity, and a scorer whose loss is the distance to (0.2, 0.5, 0.3). */
const runs = path.join(dir, 'runs');
await mkdir(runs);
for (const [name, values] of Object.entries({ a: [1, 0, 0], b: [0, 1, 0], c: [0, 0, 1], d: [0, Number.POSITIVE_INFINITY, 0] }))
  await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [3], values } });
const evalCmd = await distanceScorer(dir);
const recipeFile = path.join(dir, 'linear.yml');
await writeFile(
  recipeFile,
  `merge_method: linear\nmodels:\n${['a', 'b', 'c', 'd']
    .map((name) => `  - model: ${path.join(runs, `${name}.safetensors`)}\n    parameters:\n      weight: {min: 0, max: 1}\n`)
    .join('')}parameters:\n  normalize: true\n`,
);
const evaluation: SearchEvaluationOptions = { evalCmd, metric: 'loss', batchSize: 512, executor: 'local', retries: 0 };
const signal = new AbortController().signal;

describe('openEvolveRecipe', () => {
  it('opens the models of the recipe, leaving a diverged one out of the recipe and saying so', async () => {
    const warnings: string[] = [];
    const inputs = await openEvolveRecipe(recipeFile, { warn: (message) => warnings.push(message), signal });
    try {
      assert.deepEqual(warnings, ['d diverged: Infinity in w (element 1); left out of the search, it takes no weight']);
      assert.deepEqual(
        inputs.opened.models.map((model) => model.name),
        ['a', 'b', 'c'],
      );
      assert.deepEqual(
        inputs.recipe.ranges.map((range) => range.path),
        ['models[0].parameters.weight', 'models[1].parameters.weight', 'models[2].parameters.weight'],
      );
      assert.deepEqual(inputs.diverged, [{ name: 'd', path: path.join(runs, 'd.safetensors'), tensor: 'w', element: 1, value: 'Infinity' }]);
    } finally {
      await closeAll(inputs.opened.all);
    }
    await assert.rejects(openEvolveRecipe(path.join(runs, 'a.safetensors'), { warn: () => {}, signal }), {
      message: `soup evolve reads a mergekit YAML recipe with ranges to search; ${path.join(runs, 'a.safetensors')} is not a .yml file`,
    });
  });
});

describe('prepareEvolveFiles', () => {
  it('puts the recipe found beside a file output, or --config-out, and refuses to replace one without force', async () => {
    const inputs = await openEvolveRecipe(recipeFile, { warn: () => {}, signal });
    try {
      const out = path.join(dir, 'placed.safetensors');
      const output = await prepareOutput([inputs.opened.models[0]!], { out });
      const options = { out, force: false, configName: 'mergekit_config.yml' };
      assert.deepEqual(await prepareEvolveFiles(output, options), { recipeFile: path.join(dir, 'placed.mergekit.yml'), inOutput: false, plot: undefined });
      const plot = path.join(dir, 'taken.svg');
      await writeFile(plot, '');
      await assert.rejects(prepareEvolveFiles(output, { ...options, plot }), { message: `${plot} exists (--plot)` });
      assert.deepEqual(await prepareEvolveFiles(output, { ...options, plot, force: true, configOut: path.join(dir, 'found.yml') }), {
        recipeFile: path.join(dir, 'found.yml'),
        inOutput: false,
        plot,
      });
      await output.claim?.release();
    } finally {
      await closeAll(inputs.opened.all);
    }
  });
});

describe('evolveSoup', () => {
  it('searches the ranges, returns the best merge with the plain recipe that makes it, and writes that recipe beside the soup', async () => {
    const inputs = await openEvolveRecipe(recipeFile, { warn: () => {}, signal });
    try {
      const out = path.join(dir, 'evolved.safetensors');
      const output = await prepareOutput([inputs.opened.models[0]!], { out });
      const files = await prepareEvolveFiles(output, { out, force: false });
      const warnings: string[] = [];
      const made = await evolveSoup(inputs, files, {
        evaluation: { ...evaluation, jobs: 3 },
        settings: { evaluations: 20, seed: 1, sigma: 0.3, randomSeed: 0 },
        layers: new LayerIndex(['w']),
        command: ['evolve', recipeFile],
        warn: (message) => warnings.push(message),
        signal,
      });
      const doc = made.document;
      assert.deepEqual(warnings, []);
      assert.equal(doc.method, 'linear');
      assert.deepEqual(doc.chosen, ['a', 'b', 'c']);
      assert.equal(doc.objective, 'loss');
      assert.equal(doc.jobs, 3);
      assert.equal(doc.evaluations, 20);
      assert.equal(doc.recipeFile, path.join(dir, 'evolved.mergekit.yml'));
      assert.equal(doc.plot, null);
      assert.equal(doc.diverged.length, 1);
      assert.ok(doc.score! < doc.startMetrics.loss!, `found ${doc.score} vs the middle of the ranges ${doc.startMetrics.loss}`);
      assert.match(doc.recipe, /^merge_method: linear\n/);
      assert.equal(made.moreFiles.size, 0, 'a file output holds no recipe');
      assert.deepEqual(made.record.extra?.diverged, [{ name: 'd', tensor: 'w' }]);
      await writeOutcome(inputs.opened.all, output, made, signal, made.moreFiles);
      await writeEvolveFiles(made, undefined);
      assert.equal(await readFile(doc.recipeFile, 'utf8'), doc.recipe);
    } finally {
      await closeAll(inputs.opened.all);
    }
  });
});
