import assert from 'node:assert/strict';
import { mkdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeFloats } from '../../src/checkpoint/dtype.js';
import { TFJS_SHARD_BYTES, TfjsCheckpoint, writeTfjs } from '../../src/checkpoint/tfjs.js';
import { InputError } from '../../src/errors.js';
import { listFiles, tempDir, once } from '../helpers/files.js';
import { saveTinyModel } from '../helpers/tfjs.js';

const dir = await tempDir();

async function expectInputError(folder: string, pattern: RegExp): Promise<void> {
  await assert.rejects(TfjsCheckpoint.open(folder), (error: unknown) => {
    assert.ok(error instanceof InputError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

// biome-ignore lint/suspicious/noExplicitAny: parsed JSON whose fields each caller reads by name
async function editModelJson(folder: string, edit: (json: any) => void): Promise<void> {
  const file = path.join(folder, 'model.json');
  const json = JSON.parse(await readFile(file, 'utf8'));
  edit(json);
  await writeFile(file, JSON.stringify(json));
}

describe('TfjsCheckpoint', () => {
  it('reads every weight of a model saved by TF.js, across three shards', async () => {
    const saved = await saveTinyModel(path.join(dir, 'three-shards'), 1, 3);
    const checkpoint = await TfjsCheckpoint.open(saved.folder);
    assert.equal(checkpoint.name, 'three-shards');
    assert.equal(checkpoint.files.length, 4);
    assert.deepEqual(
      checkpoint.tensors().map((t) => [t.name, t.dtype, t.shape]),
      [
        ['hidden/kernel', 'F32', [3, 4]],
        ['hidden/bias', 'F32', [4]],
        ['logits/kernel', 'F32', [4, 2]],
        ['logits/bias', 'F32', [2]],
      ],
    );
    for (const [name, values] of saved.weights) assert.deepEqual([...(await checkpoint.readFloats(name))], [...values], name);
    await checkpoint.close();
  });

  it('dequantizes uint8, uint16 and float16 weights and rounds quantized int32', async () => {
    const folder = path.join(dir, 'quantized');
    const saved = await saveTinyModel(folder, 2);
    const extra = [
      { name: 'q8', shape: [3], dtype: 'float32', quantization: { dtype: 'uint8', scale: 0.5, min: -1 } },
      { name: 'q16', shape: [2], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.25, min: 10 } },
      { name: 'h', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } },
      { name: 'qi', shape: [2], dtype: 'int32', quantization: { dtype: 'uint8', scale: 0.4, min: 0 } },
    ];
    const bytes = Buffer.concat([
      Uint8Array.from([0, 2, 255]),
      new Uint8Array(Uint16Array.from([0, 4]).buffer),
      encodeFloats([0.5, -3], 'F16'),
      Uint8Array.from([3, 4]),
    ]);
    await writeFile(path.join(folder, 'group2-shard1of1.bin'), bytes);
    await editModelJson(folder, (json) => json.weightsManifest.push({ paths: ['group2-shard1of1.bin'], weights: extra }));

    const checkpoint = await TfjsCheckpoint.open(folder);
    assert.deepEqual([...(await checkpoint.readFloats('q8'))], [-1, 0, 126.5]);
    assert.deepEqual([...(await checkpoint.readFloats('q16'))], [10, 11]);
    assert.deepEqual([...(await checkpoint.readFloats('h'))], [0.5, -3]);
    assert.deepEqual([...new Int32Array((await checkpoint.readBytes('qi')).buffer)], [1, 2]);
    assert.equal(checkpoint.tensors().find((t) => t.name === 'q8')?.storage, 'uint8 quantized');
    assert.deepEqual([...(await checkpoint.readFloats('hidden/bias'))], [...saved.weights.get('hidden/bias')!]);
    await checkpoint.close();
  });

  it('leaves optimizer weights out but still steps over their bytes', async () => {
    const folder = path.join(dir, 'optimizer');
    const saved = await saveTinyModel(folder, 3);
    await writeFile(path.join(folder, 'group1-shard1of1.bin'), Buffer.concat([new Uint8Array(8), await readFile(path.join(folder, 'group1-shard1of1.bin'))]));
    await editModelJson(folder, (json) => json.weightsManifest[0].weights.unshift({ name: 'iter', shape: [2], dtype: 'float32', group: 'optimizer' }));
    const checkpoint = await TfjsCheckpoint.open(folder);
    assert.ok(!checkpoint.tensors().some((t) => t.name === 'iter'));
    assert.deepEqual([...(await checkpoint.readFloats('logits/bias'))], [...saved.weights.get('logits/bias')!]);
    await checkpoint.close();
  });

  it('refuses shards that hold fewer bytes than the manifest needs', async () => {
    const folder = path.join(dir, 'short');
    await saveTinyModel(folder, 4);
    const shard = path.join(folder, 'group1-shard1of1.bin');
    await writeFile(shard, (await readFile(shard)).subarray(0, 50));
    await expectInputError(folder, /model\.json: weight group 1 needs 104 bytes but its shards \(group1-shard1of1\.bin\) hold 50: shards are truncated/);
  });

  it('refuses a shard path that leaves the model folder', async () => {
    const folder = path.join(dir, 'escape');
    await saveTinyModel(folder, 5);
    await editModelJson(folder, (json) => (json.weightsManifest[0].paths = ['../../etc/passwd']));
    await expectInputError(folder, /path "\.\.\/\.\.\/etc\/passwd" points outside the checkpoint folder/);
  });

  it('refuses an absolute shard path and a shard that is a symlink out of the folder', async () => {
    const folder = path.join(dir, 'absolute');
    await saveTinyModel(folder, 9);
    await editModelJson(folder, (json) => (json.weightsManifest[0].paths = [path.join(folder, 'group1-shard1of1.bin')]));
    await expectInputError(folder, /points outside the checkpoint folder/);
    const linked = path.join(dir, 'linked');
    await saveTinyModel(linked, 10);
    const outside = path.join(dir, 'outside.bin');
    await writeFile(outside, await readFile(path.join(linked, 'group1-shard1of1.bin')));
    await rm(path.join(linked, 'group1-shard1of1.bin'));
    await symlink(outside, path.join(linked, 'group1-shard1of1.bin'));
    await expectInputError(linked, /path "group1-shard1of1\.bin" is a link that points outside the checkpoint folder/);
  });

  it('refuses a model.json without a weights manifest', async () => {
    const folder = path.join(dir, 'no-manifest');
    await saveTinyModel(folder, 6);
    await editModelJson(folder, (json) => delete json.weightsManifest);
    await expectInputError(folder, /not a TF\.js LayersModel: weightsManifest: /);
  });

  it('refuses string weights with a message naming the weight', async () => {
    const folder = path.join(dir, 'strings');
    await saveTinyModel(folder, 7);
    await editModelJson(folder, (json) => (json.weightsManifest[0].weights[0].dtype = 'string'));
    await expectInputError(folder, /tensor "hidden\/kernel": dtype "string" is not supported/);
  });

  it('refuses the dtypes "__proto__" and "constructor" as unsupported, not as an internal error', async () => {
    for (const dtype of ['__proto__', 'constructor', 'toString']) {
      const folder = path.join(dir, `dtype-${dtype}`);
      await saveTinyModel(folder, 7);
      await editModelJson(folder, (json) => (json.weightsManifest[0].weights[0].dtype = dtype));
      await expectInputError(folder, new RegExp(`tensor "hidden/kernel": dtype "${dtype}" is not supported \\(float32, int32 and bool are\\)$`));
    }
  });

  it('refuses a quantized bool weight, which TF.js would not load back', async () => {
    const folder = path.join(dir, 'bool-uint8');
    await saveTinyModel(folder, 7);
    await editModelJson(folder, (json) => {
      const weight = json.weightsManifest[0].weights[1];
      // hidden/bias: 4 float32s, 16 bytes; as a uint8-quantized bool [16] it keeps the shard's size.
      Object.assign(weight, { dtype: 'bool', shape: [16], quantization: { dtype: 'uint8', scale: 1, min: 0 } });
    });
    await expectInputError(folder, /tensor "hidden\/bias": uint8 quantization of a bool weight \(TF\.js quantizes float32 and int32 weights only\)$/);
  });

  it('refuses a topology nested 100,000 levels deep before anything recurses into it', async () => {
    const folder = path.join(dir, 'deep');
    await saveTinyModel(folder, 7);
    const file = path.join(folder, 'model.json');
    const json = JSON.parse(await readFile(file, 'utf8'));
    json.modelTopology.deep = 0;
    await writeFile(file, JSON.stringify(json).replace('"deep":0', `"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}`));
    await expectInputError(folder, /model\.json: not a TF\.js LayersModel: its JSON nests 100002 levels deep \(at most 1000\)$/);
  });
});

describe('writeTfjs', () => {
  it('writes model.json with the topology kept and shards of at most 4 MB that read back identically', async () => {
    const source = await saveTinyModel(path.join(dir, 'template'), 8);
    const template = await TfjsCheckpoint.open(source.folder);
    const big = 1_500_000; // 6 MB of float32: two shards
    const tensors = [
      { name: 'big', shape: [big], dtype: 'F32' as const },
      { name: 'half', shape: [2], dtype: 'F16' as const },
    ];
    const bigValues = Float32Array.from({ length: big }, (_, i) => i % 1000);
    const out = path.join(dir, 'written');
    await mkdir(out);
    await writeTfjs(out, template.modelJson, tensors, { note: 'x' }, (tensor) =>
      once(tensor.name === 'big' ? new Uint8Array(bigValues.buffer) : encodeFloats([1.5, 2], 'F16')),
    );
    assert.deepEqual(await listFiles(out), ['group1-shard1of2.bin', 'group1-shard2of2.bin', 'model.json']);
    assert.equal((await stat(path.join(out, 'group1-shard1of2.bin'))).size, TFJS_SHARD_BYTES);
    const json = JSON.parse(await readFile(path.join(out, 'model.json'), 'utf8'));
    assert.deepEqual(json.modelTopology, template.modelJson.modelTopology);
    assert.deepEqual(json.userDefinedMetadata, { note: 'x' });
    assert.deepEqual(json.weightsManifest[0].weights[1], { name: 'half', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } });
    const back = await TfjsCheckpoint.open(out);
    assert.deepEqual(await back.readFloats('big'), bigValues);
    assert.deepEqual([...(await back.readFloats('half'))], [1.5, 2]);
    assert.deepEqual(back.metadata, { note: 'x' });
    await back.close();
  });
});
