import assert from 'node:assert/strict';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { OnnxCheckpoint } from '../../src/checkpoint/onnx/reader.js';
import { spawn } from 'node:child_process';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const onnxRuns = path.join(fixtures, 'onnx');
const val = path.join(fixtures, 'data', 'val');
const names = ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-s4'];

/** A linear recipe over three fixture runs, each weight a range. */
const linearRecipe = (models: readonly string[], weight = '{min: 0, max: 1}'): string =>
  `merge_method: linear\nmodels:\n${models.map((model) => `  - model: ${model}\n    parameters:\n      weight: ${weight}\n`).join('')}parameters:\n  normalize: true\n`;

/** Safetensors runs of one 3-vector, a zero base, and a scorer whose loss is the distance to (0.2, 0.5, 0.3). */
const runs = path.join(dir, 'runs');
await mkdir(runs, { recursive: true });
for (const [name, values] of Object.entries({ base: [0, 0, 0], a: [1, 0, 0], b: [0, 1, 0], c: [0, 0, 1] })) {
  await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [3], values } });
}
const scorer = path.join(dir, 'score.mjs');
await writeFile(
  scorer,
  `import { appendFileSync, readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const start = 8 + Number(bytes.readBigUInt64LE(0));
const w = [0, 1, 2].map((i) => bytes.readFloatLE(start + 4 * i));
const loss = w.reduce((s, v, i) => s + (v - [0.2, 0.5, 0.3][i]) ** 2, 0);
if (process.env.SCORE_LOG) appendFileSync(process.env.SCORE_LOG, 'x\\n');
console.log(JSON.stringify({ loss, closeness: 1 - loss }));
`,
);
const tiesRecipe = path.join(dir, 'ties.yml');
await writeFile(
  tiesRecipe,
  `merge_method: ties\nbase_model: ${path.join(runs, 'base.safetensors')}\nmodels:\n${['a', 'b', 'c']
    .map((name) => `  - model: ${path.join(runs, `${name}.safetensors`)}\n    parameters:\n      weight: {min: 0, max: 1}\n      density: 1\n`)
    .join('')}parameters:\n  normalize: false\n`,
);
const evalCmd = `node '${scorer}' {ckpt}`;
/** Score with the fixture command, whose `closeness` (higher is better) soup cannot know the direction of. */
const byCloseness = ['--eval-cmd', evalCmd, '--metric', 'closeness', '--maximize'];

async function recipe(name: string, text: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, text);
  return file;
}

describe('soup evolve', () => {
  it("searches a recipe's ranges on ONNX Runtime and writes the merge, the recipe found (which soup merge remakes exactly) and the plot", async () => {
    const file = await recipe('linear.yml', linearRecipe(names.map((name) => path.join(onnxRuns, `${name}.onnx`))));
    const out = path.join(dir, 'evolved.onnx');
    const plot = path.join(dir, 'convergence.svg');
    const result = await runSoup(['evolve', file, '--val', val, '--evaluations', '15', '--seed', '2', '--plot', plot, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.strategy, 'evolve');
    assert.equal(doc.method, 'linear');
    assert.equal(doc.objective, 'loss');
    assert.deepEqual(
      doc.ranges,
      names.map((_, k) => ({ path: `models[${k}].parameters.weight`, min: 0, max: 1 })),
    );
    assert.equal(doc.evaluations, 15);
    assert.equal(doc.hyperparameters.population, 7);
    assert.deepEqual(
      doc.generations.map((g: { evaluations: number }) => g.evaluations),
      [8, 15],
    );
    assert.ok(doc.metrics.loss <= doc.startMetrics.loss, 'the best candidate is at least the middle of the ranges');
    assert.equal(doc.recipeFile, path.join(dir, 'evolved.mergekit.yml'));
    const found = await readFile(doc.recipeFile, 'utf8');
    assert.equal(found, doc.recipe);
    assert.match(found, /^merge_method: linear\nmodels:\n {2}- model: .*lr1e-4-s1\.onnx\n {4}parameters:\n {6}weight: 0\.\d+\n/);

    const remade = path.join(dir, 'remade.onnx');
    assert.equal((await runSoup(['merge', doc.recipeFile, '-o', remade])).code, 0);
    const diff = await runSoup(['diff', out, remade, '--json']);
    assert.equal(JSON.parse(diff.stdout).verdict, 'identical');
    const evaluated = await runSoup(['eval', out, '--val', val, '--json']);
    assert.equal(JSON.parse(evaluated.stdout).metrics.accuracy, doc.score);

    const card = await runSoup(['card', out]);
    assert.match(
      card.stdout,
      /^- Method: evolved merge \(linear with parameter ranges searched by CMA-ES on the validation scores; the recipe found is in the metadata\)$/m,
    );

    const svg = await readFile(plot, 'utf8');
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.equal(svg.match(/<polyline class="(bestSoFar|median)"/g)?.length, 2);

    const again = path.join(dir, 'evolved-again.onnx');
    assert.equal((await runSoup(['evolve', file, '--val', val, '--evaluations', '15', '--seed', '2', '-o', again])).code, 0);
    assert.deepEqual(await readFile(again), await readFile(out), 'same seed, same bytes');
  });

  it('searches one value per layer block when a gradient holds ranges', async () => {
    const file = await recipe(
      'gradient.yml',
      linearRecipe(
        names.slice(0, 2).map((name) => path.join(onnxRuns, `${name}.onnx`)),
        '[{min: 0, max: 1}, {min: 0, max: 1}]',
      ),
    );
    const result = await runSoup([
      'evolve',
      file,
      '--val',
      val,
      '--evaluations',
      '6',
      '--layer-pattern',
      'dense_(\\d+)',
      '-o',
      path.join(dir, 'gradient.onnx'),
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(
      doc.ranges.map((range: { path: string }) => range.path),
      ['models[0].parameters.weight[0]', 'models[0].parameters.weight[1]', 'models[1].parameters.weight[0]', 'models[1].parameters.weight[1]'],
    );
    assert.match(doc.recipe, /weight:\n {8}- 0\.\d+\n {8}- 0\.\d+\n/);
  });

  it('searches with --eval-cmd, --jobs at a time, resumes from --score-cache without calling the command again, same bytes each way', async () => {
    const log = path.join(dir, 'calls.log');
    const journal = path.join(dir, 'evolve-scores.jsonl');
    const base = ['evolve', tiesRecipe, ...byCloseness, '--evaluations', '21', '--seed', '1'];
    const serial = await runSoup([...base, '-o', path.join(dir, 'serial.safetensors'), '--json']);
    assert.equal(serial.code, 0, serial.stderr);
    const doc = JSON.parse(serial.stdout);
    assert.equal(doc.backend, 'command');
    assert.equal(doc.objective, 'closeness');
    assert.ok(doc.score > doc.startMetrics.closeness, `${doc.score} vs the middle ${doc.startMetrics.closeness}`);
    const parallel = await runSoup([...base, '--jobs', '3', '--score-cache', journal, '-o', path.join(dir, 'parallel.safetensors'), '--json'], {
      env: { SCORE_LOG: log },
    });
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.equal(JSON.parse(parallel.stdout).jobs, 3);
    assert.deepEqual(await readFile(path.join(dir, 'parallel.safetensors')), await readFile(path.join(dir, 'serial.safetensors')));
    const calls = (await readFile(log, 'utf8')).split('\n').length - 1;
    assert.equal(calls, 21);
    const resumed = await runSoup([...base, '--score-cache', journal, '-o', path.join(dir, 'resumed.safetensors'), '--json'], { env: { SCORE_LOG: log } });
    assert.equal(JSON.parse(resumed.stdout).evaluatorCalls, 0);
    assert.equal((await readFile(log, 'utf8')).split('\n').length - 1, calls, 'the command is not called again');
    assert.deepEqual(await readFile(path.join(dir, 'resumed.safetensors')), await readFile(path.join(dir, 'serial.safetensors')));
    assert.match(await readFile(path.join(dir, 'serial.mergekit.yml'), 'utf8'), /^merge_method: ties\nbase_model: .*base\.safetensors\n/);
  });

  it("resumes after a kill mid-search: the journal's evaluations are not run again, and the merge is the uninterrupted run's", async () => {
    const log = path.join(dir, 'killed-calls.log');
    const journal = path.join(dir, 'killed-scores.jsonl');
    const args = (out: string): string[] => [
      'evolve',
      tiesRecipe,
      ...byCloseness,
      '--evaluations',
      '21',
      '--seed',
      '1',
      '--score-cache',
      journal,
      '-o',
      out,
      '--json',
    ];
    const count = async (file: string): Promise<number> =>
      (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((line) => line.startsWith('x') || line.endsWith('}')).length;
    const child = spawn(process.execPath, [SOUP_BIN, ...args(path.join(dir, 'killed.safetensors'))], {
      env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME, SCORE_LOG: log },
      stdio: 'ignore',
    });
    while ((await count(log)) < 8) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    const journaled = await count(journal);
    const before = await count(log);
    const resumed = await runSoup(args(path.join(dir, 'after-kill.safetensors')), { env: { SCORE_LOG: log } });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal((await count(log)) - before, 21 - journaled);
    assert.equal(JSON.parse(resumed.stdout).evaluationsFromCache, journaled);
    const fresh = await runSoup(['evolve', tiesRecipe, ...byCloseness, '--evaluations', '21', '--seed', '1', '-o', path.join(dir, 'no-kill.safetensors')]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.deepEqual(await readFile(path.join(dir, 'after-kill.safetensors')), await readFile(path.join(dir, 'no-kill.safetensors')));
  });

  it('leaves a diverged model out of the search and says so', async () => {
    const sweep = path.join(dir, 'nan-sweep');
    await mkdir(sweep);
    for (const name of names) await copyFile(path.join(onnxRuns, `${name}.onnx`), path.join(sweep, `${name}.onnx`));
    const poisoned = path.join(sweep, `${names[1]}.onnx`);
    const model = await OnnxCheckpoint.open(poisoned);
    const bias = Buffer.from(new Float32Array(await model.readFloats('dense_2/bias')).buffer);
    await model.close();
    const bytes = await readFile(poisoned);
    bytes.writeFloatLE(Number.POSITIVE_INFINITY, bytes.indexOf(bias));
    await writeFile(poisoned, bytes);
    const file = await recipe('nan.yml', linearRecipe(names.map((name) => path.join(sweep, `${name}.onnx`))));
    const result = await runSoup(['evolve', file, '--val', val, '--evaluations', '5', '-o', path.join(dir, 'nan.onnx'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.warnings, [`${names[1]} diverged: Infinity in dense_2/bias (element 0); left out of the search, it takes no weight`]);
    assert.deepEqual(doc.chosen, [names[0], names[2]]);
    assert.equal(doc.ranges.length, 2);
    assert.doesNotMatch(doc.recipe, new RegExp(names[1]!));
  });

  it('refuses recipes and ranges that cannot be searched, naming the key', async () => {
    const model = path.join(onnxRuns, `${names[0]}.onnx`);
    const cases: [string, string][] = [
      [linearRecipe([model], '1'), 'no parameter is a range, so there is nothing to search'],
      [linearRecipe([model], '{min: 1, max: 0.5}'), 'models[0].parameters.weight: min 1 is not below max 0.5 (give a fixed value as a plain number)'],
      [linearRecipe([model], '{min: 0, max: 1, step: 0.1}'), 'models[0].parameters.weight.step: not supported (a range is {min, max})'],
      [linearRecipe([model], '{min: zero, max: 1}'), 'models[0].parameters.weight.min: must be a number'],
      [
        `merge_method: ties\nbase_model: ${model}\nmodels:\n  - model: ${path.join(onnxRuns, `${names[1]}.onnx`)}\n    parameters:\n      weight: 1\n      density: {min: 0, max: 1}\n`,
        'models[0].parameters.density.min: must be in (0, 1]',
      ],
      [
        linearRecipe([model], '1').replace('normalize: true', 'shrink: {min: 0, max: 1}'),
        'parameters.shrink: not a parameter of this method (it takes weight, normalize)',
      ],
    ];
    for (const [k, [text, message]] of cases.entries()) {
      const file = await recipe(`bad-${k}.yml`, text);
      const result = await runSoup(['evolve', file, '--val', val, '-o', path.join(dir, 'never.onnx')]);
      assert.equal(result.code, 2, result.stderr);
      assert.match(result.stderr, new RegExp(`^soup: error: ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: `), result.stderr);
      assert.ok(result.stderr.includes(message), `${result.stderr} should say ${message}`);
    }
    const notYaml = await runSoup(['evolve', model, '--val', val, '-o', path.join(dir, 'never.onnx')]);
    assert.equal(
      notYaml.stderr,
      `soup: error: soup evolve reads a mergekit YAML recipe with ranges to search; ${model} is not a .yml file (e.g. soup evolve ties-search.yml --val DATA -o OUT)\n`,
    );
    const file = await recipe('ok.yml', linearRecipe(names.slice(0, 2).map((name) => path.join(onnxRuns, `${name}.onnx`))));
    const noScorer = await runSoup(['evolve', file, '-o', path.join(dir, 'never.onnx')]);
    assert.equal(noScorer.stderr, 'soup: error: say how to score candidates: --val DATA (TF.js and ONNX models) or --eval-cmd CMD (any framework)\n');
    assert.ok(!(await readdir(dir)).includes('never.onnx'));
  });
});
