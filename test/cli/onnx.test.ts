import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { zipSync } from 'fflate';
import { encodeModel } from '../../src/checkpoint/onnx/build.js';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { encodeNpy } from '../../src/data/npy.js';
import { mlpModelSpec } from '../../scripts/onnx-fixtures.js';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';
import { FIXTURES, checkWithOnnx, linearSpec, writeModel } from '../helpers/onnx.js';

const dir = await tempDir('soup-onnx-cli-');
const ONNX = path.join(FIXTURES, 'onnx');
const TFJS = path.join(FIXTURES, 'ingredients');
const VAL = path.join(FIXTURES, 'data', 'val');
const TEST = path.join(FIXTURES, 'data', 'test.npz');
const BACKEND = /^onnxruntime \(cpu, \d+ threads\)$/;

interface EvalDocument {
  backend: string;
  metrics: Record<string, number>;
}

async function json<T>(args: string[]): Promise<T> {
  const result = await runSoup([...args, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout) as T;
}

function assertClose(actual: Record<string, number>, expected: Record<string, number>, tolerance: number, what: string): void {
  assert.deepEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), what);
  for (const [key, value] of Object.entries(expected)) assert.ok(Math.abs(actual[key]! - value) <= tolerance, `${what}: ${key} ${actual[key]} vs ${value}`);
}

describe('scoring ONNX ingredients with ONNX Runtime', () => {
  it('makes a greedy soup of the ONNX fixtures with the same choices as from the TF.js ones, and onnx.checker accepts it', async () => {
    const out = path.join(dir, 'greedy.onnx');
    type Greedy = { backend: string; chosen: string[]; score: number; steps: { pruned?: boolean }[]; ingredients: { score: number }[] };
    const onnx = await json<Greedy>(['greedy', ONNX, '--val', VAL, '-o', out]);
    const tfjs = await json<Greedy>(['greedy', TFJS, '--val', VAL, '-o', path.join(dir, 'greedy-tfjs')]);
    assert.match(onnx.backend, BACKEND);
    assert.deepEqual(onnx.chosen, tfjs.chosen);
    assert.ok(Math.abs(onnx.score - tfjs.score) < 1e-9);
    assert.deepEqual(
      onnx.ingredients.map((i) => i.score),
      tfjs.ingredients.map((i) => i.score),
    );
    assert.ok(
      onnx.steps.some((step) => step.pruned === true),
      'exact early stopping skips a hopeless candidate',
    );
    checkWithOnnx(out);
  });

  it('gives the same metrics as TF.js on the same fixture weights, to 1e-5', async () => {
    for (const name of ['lr1e-4-s1', 'lr3e-2-s8']) {
      const onnx = await json<EvalDocument>(['eval', path.join(ONNX, `${name}.onnx`), '--val', TEST]);
      const tfjs = await json<EvalDocument>(['eval', path.join(TFJS, name), '--val', TEST]);
      assert.match(onnx.backend, BACKEND);
      assertClose(onnx.metrics, tfjs.metrics, 1e-5, name);
    }
  });

  it('compares ONNX ingredients with an ensemble row built from their outputs', async () => {
    type Compare = { rows: { name: string; kind: string; scores: Record<string, number> }[] };
    const inputs = ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-s4'];
    const saved = path.join(dir, 'saved');
    const onnx = await json<Compare>(['compare', ...inputs.map((name) => path.join(ONNX, `${name}.onnx`)), '--val', VAL, '--save-dir', saved]);
    assert.deepEqual(await readdir(saved), ['greedy-soup.onnx', 'uniform-soup.onnx']);
    checkWithOnnx(path.join(saved, 'greedy-soup.onnx'));
    const tfjs = await json<Compare>(['compare', ...inputs.map((name) => path.join(TFJS, name)), '--val', VAL]);
    assert.deepEqual(
      onnx.rows.map((row) => row.kind),
      tfjs.rows.map((row) => row.kind),
    );
    assert.ok(onnx.rows.some((row) => row.kind === 'ensemble'));
    onnx.rows.forEach((row, i) => assertClose(row.scores, tfjs.rows[i]!.scores, 1e-9, row.name));
  });

  it('stops a scoring run at once on Ctrl-C, although ONNX Runtime blocks while it runs a batch', async () => {
    const folder = path.join(dir, 'slow');
    await writeModel(path.join(folder, 'a.onnx'), linearSpec(1));
    await writeModel(path.join(folder, 'b.onnx'), linearSpec(2));
    const n = 300_000;
    const x = Float32Array.from({ length: n * 3 }, (_, i) => (i % 7) - 3);
    const y = new BigInt64Array(n);
    const data = path.join(folder, 'data.npz');
    await writeFile(data, zipSync({ 'x.npy': encodeNpy(x, [n, 3]), 'y.npy': encodeNpy(y, [n]) }));
    const child = spawn(process.execPath, [SOUP_BIN, 'greedy', folder, '--val', data, '--batch-size', '1', '-o', path.join(dir, 'slow.onnx')], {
      env: { ...process.env, XDG_CACHE_HOME: TEST_CACHE_HOME },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const killed = performance.now();
    child.kill('SIGINT');
    assert.equal(await exit, 130, stderr);
    assert.ok(performance.now() - killed < 1500, `exited ${Math.round(performance.now() - killed)} ms after SIGINT`);
    assert.match(stderr, /interrupted by SIGINT; nothing was written/);
  });
});

describe('--model model.onnx for ingredients of any format', () => {
  it('scores TF.js and safetensors ingredients through the ONNX export, listing state-dict entries it does not use', async () => {
    const model = path.join(ONNX, 'lr1e-4-s1.onnx');
    const tfjs = await json<EvalDocument>(['eval', path.join(TFJS, 'lr3e-4-s2'), '--val', TEST]);
    const viaOnnx = await json<EvalDocument>(['eval', path.join(TFJS, 'lr3e-4-s2'), '--val', TEST, '--model', model]);
    assert.match(viaOnnx.backend, BACKEND);
    assertClose(viaOnnx.metrics, tfjs.metrics, 1e-5, 'TF.js weights through the ONNX graph');

    const checkpoint = await TfjsCheckpoint.open(path.join(TFJS, 'lr3e-4-s2'));
    const tensors: Record<string, RawTensor> = {};
    for (const tensor of checkpoint.tensors())
      tensors[tensor.name] = { dtype: 'F32', shape: tensor.shape, values: Array.from(await checkpoint.readFloats(tensor.name)) };
    await checkpoint.close();
    tensors['bn.num_batches_tracked'] = { dtype: 'I64', shape: [], bytes: new Uint8Array(8) };
    const file = await writeSafetensorsFile(path.join(dir, 'st', 'run.safetensors'), tensors);
    const result = await runSoup(['eval', file, '--val', TEST, '--model', model, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assertClose((JSON.parse(result.stdout) as EvalDocument).metrics, tfjs.metrics, 1e-5, 'safetensors weights through the ONNX graph');
    assert.equal(result.stderr, `soup: warning: 1 tensor(s) of ${file} are not used by ${model} and are ignored when scoring: bn.num_batches_tracked\n`);
  });

  it('swaps the weights of a model exported with keep_initializers_as_inputs, instead of silently using the stored ones', async () => {
    const checkpoint = await TfjsCheckpoint.open(path.join(TFJS, 'lr1e-4-s1'));
    const spec = await mlpModelSpec(checkpoint);
    await checkpoint.close();
    spec.inputs.push(...spec.initializers.map((initializer) => ({ name: initializer.name, dtype: initializer.dtype, dims: initializer.dims })));
    const model = await writeModel(path.join(dir, 'as-inputs.onnx'), spec);
    const other = path.join(TFJS, 'lr3e-2-s8');
    const expected = await json<EvalDocument>(['eval', other, '--val', TEST]);
    const scored = await json<EvalDocument>(['eval', other, '--val', TEST, '--model', model]);
    assertClose(scored.metrics, expected.metrics, 1e-5, "the candidate's weights, not the stored ones");
  });

  it('says to re-export without constant folding when an initializer has a made-up name, and names shape mismatches', async () => {
    const folded = await writeModel(path.join(dir, 'folded.onnx'), linearSpec(1, { weightName: 'onnx::MatMul_123' }));
    const weights = await writeSafetensorsFile(path.join(dir, 'linear', 'w.safetensors'), {
      'fc.weight': { dtype: 'F32', shape: [3, 2], values: [1, 2, 3, 4, 5, 6] },
      'fc.bias': { dtype: 'F32', shape: [2], values: [0, 0] },
    });
    const data = path.join(dir, 'linear', 'data.npz');
    await writeFile(data, zipSync({ 'x.npy': encodeNpy(new Float32Array(6), [2, 3]), 'y.npy': encodeNpy(new BigInt64Array(2), [2]) }));
    const result = await runSoup(['eval', weights, '--val', data, '--model', folded]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${folded}: initializer "onnx::MatMul_123" has a name the exporter made up (constant folding), so no tensor of ${weights} can be matched to it ` +
        '(re-export with torch.onnx.export(..., do_constant_folding=False), or with the dynamo exporter (dynamo=True), which keeps parameter names)\n',
    );
    const wrong = await writeModel(
      path.join(dir, 'wrong.onnx'),
      encodeModel({
        ...linearSpec(1),
        initializers: [{ name: 'fc.weight', dtype: 'F32', dims: [2, 3], data: new Uint8Array(24) }, linearSpec(1).initializers[1]!],
      }),
    );
    const mismatch = await runSoup(['eval', weights, '--val', data, '--model', wrong]);
    assert.equal(mismatch.code, 2);
    assert.equal(mismatch.stderr, `soup: error: ${wrong}: size mismatch for fc.weight: [2, 3] in the model vs [3, 2] in ${weights}\n`);
    const onnxOut = await runSoup(['greedy', weights, '--val', data, '--model', folded, '-o', path.join(dir, 'from-safetensors.onnx')]);
    assert.equal(
      onnxOut.stderr,
      `soup: error: ${path.join(dir, 'from-safetensors.onnx')}: an ONNX soup needs ONNX ingredients, and ${weights} is safetensors (write a .safetensors file, or a folder in the ingredients' format)\n`,
    );
  });
});

describe('models with several inputs', () => {
  it('feeds each input the .npz array of its name, int64 token ids included', async () => {
    const model = path.join(FIXTURES, 'onnx-multi', 'tiny.onnx');
    const data = path.join(FIXTURES, 'onnx-multi', 'data.npz');
    const result = await json<EvalDocument & { n: number }>(['eval', model, '--val', data]);
    assert.equal(result.n, 64);
    assert.equal(result.metrics.accuracy, 1, "the labels are the model's own predictions, computed by hand");
    const named = await json<EvalDocument>(['eval', model, '--val', data, '--output-name', 'logits']);
    assert.equal(named.metrics.accuracy, 1);
    const missing = path.join(dir, 'missing.npz');
    await writeFile(missing, zipSync({ 'input_ids.npy': encodeNpy(new BigInt64Array(8), [2, 4]), 'y.npy': encodeNpy(new BigInt64Array(2), [2]) }));
    const refused = await runSoup(['eval', model, '--val', missing]);
    assert.equal(refused.code, 2);
    assert.equal(refused.stderr, `soup: error: ${missing}: has no array "features" for the model's input of that name (it has: input_ids, y)\n`);
    const unknown = await runSoup(['eval', model, '--val', data, '--output-name', 'scores']);
    assert.equal(unknown.stderr, 'soup: error: --output-name: the model has no output "scores" (it has logits)\n');
  });
});

describe('without ONNX Runtime installed', () => {
  it('says how to install it when ONNX scoring needs it, and everything else still works', async () => {
    // A module hook makes onnxruntime-node unresolvable, as on a machine where it was never installed.
    const hooks = path.join(dir, 'hooks.mjs');
    await writeFile(
      hooks,
      "export async function resolve(s, c, next) { if (s === 'onnxruntime-node') throw new Error(\"Cannot find package 'onnxruntime-node'\"); return next(s, c); }\n",
    );
    const block = path.join(dir, 'block.mjs');
    await writeFile(block, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
    const run = (args: string[]) =>
      new Promise<{ code: number | null; stderr: string }>((resolve) => {
        const child = spawn(process.execPath, ['--import', block, SOUP_BIN, ...args], {
          env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
          stdio: ['ignore', 'ignore', 'pipe'],
        });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('close', (code) => resolve({ code, stderr }));
      });
    const scored = await run(['eval', path.join(ONNX, 'lr1e-4-s1.onnx'), '--val', TEST]);
    assert.equal(scored.code, 2);
    assert.match(
      scored.stderr,
      /^soup: error: scoring ONNX models needs onnxruntime-node, which cannot be loaded \(Cannot find package 'onnxruntime-node'\) \(install it: ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node \(the CPU build needs no download\); or score with --eval-cmd\)\n$/,
    );
    const souped = await run(['uniform', ONNX, '-o', path.join(dir, 'no-ort.onnx')]);
    assert.equal(souped.code, 0, souped.stderr);
  });
});
