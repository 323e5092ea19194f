/**
 * `SOUP_BENCH_ONLY=search npm run bench`: the gradient-free learned soup and soup evolve on the
 * fixture sweep through ONNX Runtime (issue 22's targets), test accuracy beside validation, and
 * evaluations per second as the model grows. The sweep is fixtures/onnx with its most aggressive
 * run (lr3e-2-s8) made diverged (a NaN written into its weights), as a sweep with one diverged run.
 * Also the 40-D ellipsoid and Rosenbrock runs of the optimiser, too slow for the unit tests.
 */
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { encodeModel } from '../src/checkpoint/onnx/build.js';
import { OnnxCheckpoint } from '../src/checkpoint/onnx/reader.js';
import type { Checkpoint } from '../src/checkpoint/types.js';
import { seededRandom } from '../src/random.js';
import { minimize } from '../src/soup/search/cmaes.js';
import { mlpModelSpec } from '../scripts/onnx-fixtures.js';
import type { ThroughputRow } from './onnx-throughput.js';

const DIVERGED = 'lr3e-2-s8';
const BUDGET = Number(process.env.SOUP_BENCH_EVALUATIONS ?? 400);

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON whose fields each caller reads by name
function soup(root: string, args: string[]): { doc: Record<string, any>; seconds: number } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [path.join(root, 'bin', 'soup.js'), ...args, '--json'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (result.status !== 0) throw new Error(`soup ${args.join(' ')} failed: ${result.stderr}`);
  return { doc: JSON.parse(result.stdout), seconds: (performance.now() - started) / 1000 };
}

function testAccuracy(root: string, model: string): number {
  return soup(root, ['eval', model, '--val', path.join(root, 'fixtures', 'data', 'test.npz')]).doc.metrics.accuracy;
}

async function poison(file: string): Promise<void> {
  const model = await OnnxCheckpoint.open(file);
  const bias = Buffer.from(new Float32Array(await model.readFloats('dense_2/bias')).buffer);
  await model.close();
  const bytes = await readFile(file);
  bytes.writeFloatLE(Number.NaN, bytes.indexOf(bias));
  await writeFile(file, bytes);
}

/** An MLP 784-h-10 as ONNX, weights from a seeded common start plus a run's own noise. */
async function randomMlp(file: string, hidden: number, run: number): Promise<void> {
  const shapes: [string, number[]][] = [
    ['dense_1/kernel', [784, hidden]],
    ['dense_1/bias', [hidden]],
    ['dense_2/kernel', [hidden, 10]],
    ['dense_2/bias', [10]],
  ];
  const common = seededRandom(1);
  const own = seededRandom(100 + run);
  const values = new Map(
    shapes.map(([name, shape]) => [name, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (common() - 0.5) * 0.1 + (own() - 0.5) * 0.01)]),
  );
  const fake = { tensors: () => shapes.map(([name, shape]) => ({ name, shape, dtype: 'F32' })), readFloats: async (name: string) => values.get(name)! };
  await writeFile(file, encodeModel(await mlpModelSpec(fake as unknown as Checkpoint)));
}

export async function benchSearch(root: string, work: string, rows: ThroughputRow[], results: Record<string, unknown>): Promise<void> {
  const val = path.join(root, 'fixtures', 'data', 'val');
  const sweep = path.join(work, 'sweep');
  const finite = path.join(work, 'finite');
  await mkdir(sweep, { recursive: true });
  await mkdir(finite, { recursive: true });
  for (const name of await readdir(path.join(root, 'fixtures', 'onnx'))) {
    await copyFile(path.join(root, 'fixtures', 'onnx', name), path.join(sweep, name));
    if (!name.startsWith(DIVERGED)) await copyFile(path.join(root, 'fixtures', 'onnx', name), path.join(finite, name));
  }
  await poison(path.join(sweep, `${DIVERGED}.onnx`));
  const out = (name: string): string => path.join(work, name);

  // Greedy cannot take a NaN ingredient: it runs on the 7 finite runs, which is the soup it would make anyway.
  const greedy = soup(root, ['greedy', finite, '--val', val, '-o', out('greedy.onnx')]);
  const greedyTest = testAccuracy(root, out('greedy.onnx'));
  rows.push({ name: `soup learned / evolve on fixtures/onnx (8 runs, ${DIVERGED} diverged), ${greedy.doc.samples ?? 2000} val samples`, value: '' });
  rows.push({ name: '  greedy soup (7 finite runs): val / test accuracy', value: `${greedy.doc.score.toFixed(4)} / ${greedyTest.toFixed(4)}` });
  const measured: Record<string, unknown> = {
    greedy: { val: greedy.doc.score, test: greedyTest, chosen: greedy.doc.chosen, evaluations: greedy.doc.evaluations },
  };

  const learnedRuns: [string, string[]][] = [
    ['learned, by ingredient, loss objective', []],
    ['learned, by ingredient, accuracy objective', ['--objective', 'accuracy']],
    ['learned, by block, loss objective', ['--by', 'block']],
    ['learned, by block, accuracy objective', ['--by', 'block', '--objective', 'accuracy']],
  ];
  for (const [label, extra] of learnedRuns) {
    const file = out(`${label.replace(/[^a-z]+/g, '-')}.onnx`);
    const { doc, seconds } = soup(root, ['learned', sweep, '--val', val, '--evaluations', String(BUDGET), '--seed', '0', ...extra, '-o', file]);
    const test = testAccuracy(root, file);
    const divergedWeight = Math.max(...Object.values(doc.weights as Record<string, Record<string, number>>).map((alphas) => alphas[DIVERGED]!));
    const gap = doc.score - greedy.doc.score;
    rows.push({
      name: `  ${label}: val / test accuracy`,
      value: `${doc.score.toFixed(4)} / ${test.toFixed(4)}`,
      target: 'val >= greedy - 0.005',
      holds: gap >= -0.005,
    });
    rows.push({
      name: `    ${doc.searchEvaluations} evaluations, ${DIVERGED}'s weight, evaluations/s`,
      value: `${divergedWeight} (${doc.diverged.length} left out), ${doc.evaluationsPerSecond}/s, ${seconds.toFixed(1)} s in all`,
      target: 'weight <= 0.05',
      holds: divergedWeight <= 0.05,
    });
    measured[label] = {
      val: doc.score,
      test,
      loss: doc.metrics.loss,
      evaluations: doc.searchEvaluations,
      evaluationsPerSecond: doc.evaluationsPerSecond,
      divergedWeight,
      seconds,
      blocks: doc.blocks,
    };
  }

  // TIES needs a base: the uniform soup of the finite runs stands for the common starting point, which the sweep does not ship.
  const base = out('base.onnx');
  soup(root, ['uniform', finite, '-o', base]);
  const models = (await readdir(sweep)).sort().map((name) => path.join(sweep, name));
  const recipe = out('ties-search.yml');
  await writeFile(
    recipe,
    `merge_method: ties\nbase_model: ${base}\nmodels:\n${models.map((model) => `  - model: ${model}\n    parameters:\n      weight: {min: 0, max: 1}\n      density: {min: 0.1, max: 1}\n`).join('')}parameters:\n  normalize: true\n`,
  );
  for (const [label, extra] of [
    ['evolve, TIES weights and densities, loss objective', []],
    ['evolve, TIES weights and densities, accuracy objective', ['--objective', 'accuracy']],
  ] as [string, string[]][]) {
    const file = out(`${label.replace(/[^a-z]+/g, '-')}.onnx`);
    const { doc, seconds } = soup(root, [
      'evolve',
      recipe,
      '--val',
      val,
      '--evaluations',
      String(BUDGET),
      '--seed',
      '0',
      ...extra,
      '-o',
      file,
      '--plot',
      `${file}.svg`,
    ]);
    const test = testAccuracy(root, file);
    rows.push({
      name: `  ${label}: val / test accuracy`,
      value: `${doc.score.toFixed(4)} / ${test.toFixed(4)}`,
      target: 'val >= greedy',
      holds: doc.score >= greedy.doc.score,
    });
    rows.push({
      name: `    ${doc.evaluations} evaluations, evaluations/s`,
      value: `${doc.evaluationsPerSecond}/s, ${seconds.toFixed(1)} s in all, ${doc.diverged.length} left out`,
    });
    measured[label] = { val: doc.score, test, evaluations: doc.evaluations, evaluationsPerSecond: doc.evaluationsPerSecond, seconds, found: doc.found };
  }

  // Evaluations per second (candidate build + scoring on 2,000 samples) as the MLP grows, 4 runs by ingredient.
  const scaling: Record<string, unknown> = {};
  for (const hidden of [64, 256, 1024, 4096]) {
    const dir = out(`mlp-${hidden}`);
    await mkdir(dir);
    for (let run = 0; run < 4; run++) await randomMlp(path.join(dir, `run-${run}.onnx`), hidden, run);
    const { doc } = soup(root, ['learned', dir, '--val', val, '--evaluations', '40', '-o', out(`mlp-${hidden}-soup.onnx`)]);
    const parameters = 784 * hidden + hidden + hidden * 10 + 10;
    rows.push({
      name: `  learned search on a 784-${hidden}-10 MLP (${(parameters / 1e6).toFixed(2)} M parameters)`,
      value: `${doc.evaluationsPerSecond} evaluations/s`,
    });
    scaling[hidden] = { parameters, evaluationsPerSecond: doc.evaluationsPerSecond };
  }
  measured.scaling = scaling;

  // The optimiser alone on the 40-D cases the unit tests leave out (f_stop 1e-10, seed 1).
  const ellipsoid = (x: Float64Array): number => x.reduce((s, v, i) => s + 1e6 ** (i / (x.length - 1)) * v * v, 0);
  const rosenbrock = (x: Float64Array): number => {
    let s = 0;
    for (let i = 0; i < x.length - 1; i++) s += 100 * (x[i]! ** 2 - x[i + 1]!) ** 2 + (x[i]! - 1) ** 2;
    return s;
  };
  for (const [name, f, x0, sigma] of [
    ['ellipsoid', ellipsoid, 1, 1],
    ['Rosenbrock', rosenbrock, 0, 0.1],
  ] as const) {
    const started = performance.now();
    const result = minimize(f, { mean: new Array(40).fill(x0), sigma, seed: 1, target: 1e-10, maxEvaluations: 200_000 });
    rows.push({
      name: `  CMA-ES, 40-D ${name} to 1e-10`,
      value: `${result.evaluations} evaluations (f = ${result.value.toExponential(1)}), ${((performance.now() - started) / 1000).toFixed(1)} s`,
    });
    measured[`cmaes-40-${name}`] = { evaluations: result.evaluations, value: result.value };
  }
  results.search = measured;
}
