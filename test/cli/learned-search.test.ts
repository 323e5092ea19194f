import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { OnnxCheckpoint } from '../../src/checkpoint/onnx/reader.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const onnxRuns = path.join(fixtures, 'onnx');
const val = path.join(fixtures, 'data', 'val');

/** Three safetensors runs of one 3-vector, and a scorer whose loss is the distance to a convex mix of them (0.2 a + 0.5 b + 0.3 c). */
const RUNS = { a: [1, 0, 0], b: [0, 1, 0], c: [0, 0, 1] } as const;
const runs = path.join(dir, 'cmd-runs');
await mkdir(runs, { recursive: true });
for (const [name, values] of Object.entries(RUNS))
  await writeSafetensorsFile(path.join(runs, `${name}.safetensors`), { w: { dtype: 'F32', shape: [3], values: [...values] } });
const scorer = path.join(dir, 'score.mjs');
await writeFile(
  scorer,
  `import { appendFileSync, readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const start = 8 + Number(bytes.readBigUInt64LE(0));
const w = [0, 1, 2].map((i) => bytes.readFloatLE(start + 4 * i));
const target = [0.2, 0.5, 0.3];
const loss = w.reduce((s, v, i) => s + (v - target[i]) ** 2, 0);
if (process.env.SCORE_LOG) appendFileSync(process.env.SCORE_LOG, w.join(',') + '\\n');
console.log(JSON.stringify({ loss, closeness: 1 - loss }));
`,
);
const evalCmd = `node '${scorer}' {ckpt}`;
/** Score with the fixture command, whose `closeness` (higher is better) soup cannot know the direction of. */
const byCloseness = ['--eval-cmd', evalCmd, '--metric', 'closeness', '--maximize'];
/** Complete lines of a file (a journal line torn by the kill is not an entry). */
const lines = async (file: string): Promise<number> =>
  (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((line) => {
    if (line === '') return false;
    try {
      JSON.parse(line);
      return true;
    } catch {
      return !line.startsWith('{');
    }
  }).length;

describe('soup learned without gradients (CMA-ES)', () => {
  it('searches ONNX models on --val, writes the best soup it scored, and writes the same bytes for the same seed', async () => {
    const out = path.join(dir, 'onnx-soup.onnx');
    const result = await runSoup(['learned', onnxRuns, '--val', val, '--evaluations', '30', '--seed', '3', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.strategy, 'learned');
    assert.equal(doc.optimizer, 'CMA-ES');
    assert.equal(doc.objective, 'loss', 'ranked by the loss, which ONNX Runtime scoring measures');
    assert.equal(doc.metric, 'accuracy');
    assert.match(doc.backend, /^onnxruntime \(cpu, \d+ threads\)$/);
    assert.equal(doc.by, 'ingredient');
    assert.equal(doc.searchEvaluations, 30);
    assert.equal(doc.evaluations, 38, '8 ingredients, the uniform soup and 29 candidates');
    assert.equal(doc.hyperparameters.population, 10);
    assert.deepEqual(
      doc.generations.map((g: { evaluations: number }) => g.evaluations),
      [11, 21, 30],
      'the last generation is cut at the budget',
    );
    assert.deepEqual(doc.steps, []);
    assert.deepEqual(doc.epochs, []);
    assert.equal(doc.beta, 1);
    assert.deepEqual(doc.diverged, []);
    assert.equal(doc.uniformScore, 0.6435, 'the search starts at the uniform soup');
    assert.ok(doc.score > doc.uniformScore + 0.1, `learned ${doc.score} vs uniform ${doc.uniformScore}`);
    for (const g of doc.generations) assert.ok(g.bestSoFar <= g.best || Number.isNaN(g.best), 'best so far never worse than the generation');
    assert.equal(doc.objectiveScore, Math.min(...doc.generations.map((g: { best: number }) => g.best), doc.metrics.loss));
    for (const alphas of Object.values(doc.weights as Record<string, Record<string, number>>)) {
      assert.ok(Math.abs(Object.values(alphas).reduce((a, b) => a + b, 0) - 1) < 1e-12, 'a convex mix');
    }
    const evaluated = await runSoup(['eval', out, '--val', val, '--json']);
    assert.equal(JSON.parse(evaluated.stdout).metrics.accuracy, doc.score, 'the written soup scores what the command reported');

    const card = await runSoup(['card', out]);
    assert.match(
      card.stdout,
      /^- Method: learned soup \(mixing weights per ingredient or block of layers, searched by CMA-ES on the validation scores, no gradients; every weight is in the recipe\)$/m,
    );

    const again = path.join(dir, 'onnx-soup-again.onnx');
    const rerun = await runSoup(['learned', onnxRuns, '--val', val, '--evaluations', '30', '--seed', '3', '-o', again, '--json']);
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.deepEqual(await readFile(again), await readFile(out), 'same seed, same bytes');
    const other = path.join(dir, 'onnx-soup-other.onnx');
    assert.equal((await runSoup(['learned', onnxRuns, '--val', val, '--evaluations', '30', '--seed', '4', '-o', other])).code, 0);
    assert.notDeepEqual(await readFile(other), await readFile(out), 'another seed searches elsewhere');
  });

  it('shows the generation, the best so far and evaluations per second on a terminal', () => {
    const quoted = [process.execPath, SOUP_BIN, 'learned', onnxRuns, '--val', val, '--evaluations', '15', '-o', path.join(dir, 'progress.onnx')]
      .map((a) => `'${a}'`)
      .join(' ');
    const shown = spawnSync('script', ['-qec', quoted, '/dev/null'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME, COLUMNS: '160' },
    });
    assert.equal(shown.status, 0, shown.stdout);
    assert.match(shown.stdout, /scoring .*\| \d+ \/ 15 .*generation [12]: best loss 0\.\d{4}, [\d.]+ evaluations\/s/);
    assert.match(shown.stdout, /Learned soup of 8 ingredients \(CMA-ES, no gradients\)/);
  });

  it('searches one weight per ingredient per block of layers with --by block, blocks named after the layers', async () => {
    const out = path.join(dir, 'block-soup.onnx');
    const result = await runSoup(['learned', onnxRuns, '--val', val, '--by', 'block', '--evaluations', '20', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.by, 'block');
    assert.deepEqual(Object.keys(doc.blocks), ['dense_1', 'dense_2']);
    assert.equal(doc.hyperparameters.population, 12, '4 + floor(3 ln 16) for 2 blocks of 8 logits');
    assert.deepEqual(doc.weights['dense_1/kernel'], doc.blocks.dense_1);
    assert.deepEqual(doc.weights['dense_1/bias'], doc.blocks.dense_1);
    assert.deepEqual(doc.weights['dense_2/bias'], doc.blocks.dense_2);
    const one = await runSoup([
      'learned',
      onnxRuns,
      '--val',
      val,
      '--by',
      'block',
      '--blocks',
      '1',
      '--evaluations',
      '5',
      '-o',
      path.join(dir, 'one-block.onnx'),
      '--json',
    ]);
    assert.deepEqual(Object.keys(JSON.parse(one.stdout).blocks), ['dense_1 .. dense_2']);
  });

  it('leaves a diverged ingredient out, gives it no weight, and says so', async () => {
    const sweep = path.join(dir, 'sweep-with-nan');
    await mkdir(sweep);
    const names = (await readdir(onnxRuns)).filter((name) => name.endsWith('.onnx')).slice(0, 3);
    for (const name of names) await copyFile(path.join(onnxRuns, name), path.join(sweep, name));
    // Poison dense_2/bias of the last run: its raw float32 bytes are unique in the file.
    const poisoned = path.join(sweep, names[2]!);
    const model = await OnnxCheckpoint.open(poisoned);
    const bias = Buffer.from(new Float32Array(await model.readFloats('dense_2/bias')).buffer);
    await model.close();
    const bytes = await readFile(poisoned);
    const at = bytes.indexOf(bias);
    assert.ok(at > 0);
    bytes.writeFloatLE(Number.NaN, at + 8);
    await writeFile(poisoned, bytes);

    const result = await runSoup(['learned', sweep, '--val', val, '--evaluations', '8', '-o', path.join(dir, 'nan-soup.onnx'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    const name = names[2]!.replace(/\.onnx$/, '');
    assert.deepEqual(doc.diverged, [{ name, path: poisoned, tensor: 'dense_2/bias', element: 2, value: 'NaN' }]);
    assert.deepEqual(doc.warnings, [`${name} diverged: NaN in dense_2/bias (element 2); left out of the learned soup, it takes no weight`]);
    assert.equal(doc.chosen.length, 2);
    assert.ok(!doc.chosen.includes(name));
    // Scored as every command scores a diverged run: its NaN outputs count as wrong.
    assert.equal(doc.ingredients.find((i: { name: string }) => i.name === name).score, 0, 'a diverged run is scored');
    for (const alphas of Object.values(doc.weights as Record<string, Record<string, number>>)) assert.equal(alphas[name], 0);
  });

  it('searches ingredients of another format through --model model.onnx', async () => {
    const converted = path.join(dir, 'st-runs');
    await mkdir(converted);
    for (const name of ['lr1e-4-s1', 'lr3e-4-s2']) {
      const made = await runSoup(['uniform', path.join(onnxRuns, `${name}.onnx`), '-o', path.join(converted, `${name}.safetensors`)]);
      assert.equal(made.code, 0, made.stderr);
    }
    const out = path.join(dir, 'st-soup.safetensors');
    const result = await runSoup([
      'learned',
      converted,
      '--model',
      path.join(onnxRuns, 'lr1e-4-s1.onnx'),
      '--val',
      val,
      '--evaluations',
      '5',
      '-o',
      out,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.match(doc.backend, /^onnxruntime/);
    assert.deepEqual(doc.chosen, ['lr1e-4-s1', 'lr3e-4-s2']);
    assert.equal(doc.searchEvaluations, 5);
    const soup = await SafetensorsFile.open(out);
    assert.deepEqual(
      soup.tensors().map((tensor) => tensor.name),
      ['dense_1/kernel', 'dense_1/bias', 'dense_2/kernel', 'dense_2/bias'],
    );
    await soup.close();
  });

  it('searches with --eval-cmd, ranking by the loss the command reports, close to the best mix', async () => {
    const out = path.join(dir, 'cmd-soup.safetensors');
    const result = await runSoup(['learned', runs, ...byCloseness, '--evaluations', '60', '--seed', '1', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.backend, 'command');
    assert.equal(doc.objective, 'closeness', "a command's metrics are known only from its output: the search ranks by --metric");
    assert.ok(doc.score > 0.99, `closeness ${doc.score}`);
    const soup = await SafetensorsFile.open(out);
    const w = [...(await soup.readFloats('w'))];
    await soup.close();
    assert.deepEqual(
      w.map((v) => Number(v.toFixed(1))),
      [0.2, 0.5, 0.3],
    );
    const byLoss = await runSoup([
      'learned',
      runs,
      ...byCloseness,
      '--objective',
      'loss',
      '--evaluations',
      '20',
      '-o',
      path.join(dir, 'cmd-loss.safetensors'),
      '--json',
    ]);
    assert.equal(JSON.parse(byLoss.stdout).objective, 'loss');
  });

  it('scores a generation --jobs at a time and ends with the same bytes as one at a time', async () => {
    const serial = path.join(dir, 'serial.safetensors');
    const parallel = path.join(dir, 'parallel.safetensors');
    const one = await runSoup(['learned', runs, ...byCloseness, '--evaluations', '16', '-o', serial, '--json']);
    const four = await runSoup(['learned', runs, ...byCloseness, '--evaluations', '16', '--jobs', '4', '-o', parallel, '--json']);
    assert.equal(one.code, 0, one.stderr);
    assert.equal(four.code, 0, four.stderr);
    assert.equal(JSON.parse(one.stdout).jobs, 1);
    assert.equal(JSON.parse(four.stdout).jobs, 4);
    assert.deepEqual(await readFile(parallel), await readFile(serial));
  });

  it('resumes after a kill from --score-cache: no candidate scored twice, the same bytes as an uninterrupted run', async () => {
    const journal = path.join(dir, 'scores.jsonl');
    const log = path.join(dir, 'calls.log');
    const args = (out: string): string[] => ['learned', runs, ...byCloseness, '--evaluations', '30', '--score-cache', journal, '-o', out, '--json'];
    const env = { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME, SCORE_LOG: log };
    const killed = path.join(dir, 'killed.safetensors');
    const child = spawn(process.execPath, [SOUP_BIN, ...args(killed)], { env, stdio: 'ignore' });
    while ((await lines(log)) < 12) await new Promise((resolve) => setTimeout(resolve, 20));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('close', resolve));
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.startsWith('killed')),
      [],
      'nothing half-written',
    );
    const before = await lines(log);
    const journaled = await lines(journal);

    const resumed = path.join(dir, 'resumed.safetensors');
    const result = await runSoup(args(resumed), { env: { SCORE_LOG: log } });
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    const calledAgain = (await lines(log)) - before;
    assert.equal(calledAgain, 33 - journaled, 'every evaluation the journal holds is taken from it');
    assert.equal(doc.evaluationsFromCache, journaled - 3, 'the 3 ingredients were journaled first, then the search');

    const fresh = path.join(dir, 'fresh.safetensors');
    assert.equal((await runSoup(['learned', runs, ...byCloseness, '--evaluations', '30', '-o', fresh])).code, 0);
    assert.deepEqual(await readFile(resumed), await readFile(fresh), 'the resumed run writes what an uninterrupted one does');

    const third = await runSoup(args(path.join(dir, 'third.safetensors')), { env: { SCORE_LOG: log } });
    assert.equal(third.code, 0, third.stderr);
    assert.equal(JSON.parse(third.stdout).evaluatorCalls, 0);
    assert.equal(JSON.parse(third.stdout).evaluationsFromCache, 30);
    assert.equal(await lines(log), before + calledAgain, 'a finished search re-run calls the command 0 times');
  });

  it('refuses combinations that cannot work, in one line each', async () => {
    const blocks = await runSoup(['learned', onnxRuns, '--val', val, '--blocks', '2', '-o', path.join(dir, 'x.onnx')]);
    assert.equal(blocks.code, 2);
    assert.equal(blocks.stderr, 'soup: error: --blocks groups layers into blocks, which only --by block searches (add --by block)\n');
    const both = await runSoup(['learned', onnxRuns, '--val', val, '--by-model', '--by', 'block', '-o', path.join(dir, 'x.onnx')]);
    assert.equal(both.stderr, 'soup: error: --by-model and --by block disagree: --by-model is one weight per ingredient (--by ingredient)\n');
    const objective = await runSoup(['learned', onnxRuns, '--val', val, '--objective', 'bleu', '-o', path.join(dir, 'x.onnx')]);
    assert.equal(objective.code, 2);
    assert.match(objective.stderr, /^soup: error: --objective: onnxruntime \(cpu, \d+ threads\) measures accuracy, top5, loss, margin, not "bleu"\n$/);
    const tfjs = await runSoup(['learned', path.join(fixtures, 'ingredients'), '--val', val, '--by', 'block', '-o', path.join(dir, 'x')]);
    assert.equal(tfjs.code, 2);
    assert.equal(
      tfjs.stderr,
      `soup: error: --by belongs to the gradient-free search (ONNX models, --eval-cmd); ${path.join(fixtures, 'ingredients', 'lr1e-3-ls-s5')} is a TF.js model, trained by gradient descent ` +
        '(leave it out, or score an ONNX export (--model model.onnx) to search without gradients)\n',
    );
    const missing = await runSoup(['learned', runs, ...byCloseness, '--objective', 'wer', '--evaluations', '3', '-o', path.join(dir, 'x.safetensors')]);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      'soup: error: --objective wer: the scores have no "wer" (they have: loss, closeness) (rank by one of those with --objective, or make the evaluation report it)\n',
    );
    const population = await runSoup(['learned', onnxRuns, '--val', val, '--population', '1', '-o', path.join(dir, 'x.onnx')]);
    assert.equal(population.stderr, 'soup: error: --population: Number must be greater than or equal to 2\n');
    assert.ok(!(await readdir(dir)).includes('x.onnx'));
    assert.ok(!(await readdir(dir)).includes('x.safetensors'));
  });
});
