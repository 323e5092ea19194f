import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cp, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';
import { loadWithTorch } from '../helpers/torch-python.js';

const dir = await tempDir();

const bytes = (array: ArrayBufferView): Uint8Array => new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
const f64 = (values: number[]): Uint8Array => bytes(new Float64Array(values));
const u16 = (values: number[]): Uint8Array => bytes(new Uint16Array(values));

/** Two ingredients of every dtype torch.save can hold; floats differ so that the soup is their mean. */
function ingredient(seed: 1 | 2): Record<string, RawTensor> {
  const one = seed === 1;
  return {
    'layer.weight': { dtype: 'F32', shape: [2, 3], values: one ? [1, 2, 3, 4, 5, 6] : [3, 4, 5, 6, 7, 8] },
    'layer.f64': { dtype: 'F64', shape: [3], bytes: f64(one ? [0.25, -1.5, 1e10] : [0.75, 2.5, 3e10]) },
    // Half and bfloat16 bit patterns of 1, 2 (first) and 3, 4 (second): means 2 and 3 exactly.
    'layer.f16': { dtype: 'F16', shape: [2], bytes: u16(one ? [0x3c00, 0x4000] : [0x4200, 0x4400]) },
    'layer.bf16': { dtype: 'BF16', shape: [2], bytes: u16(one ? [0x3f80, 0x4000] : [0x4040, 0x4080]) },
    'buffers.i64': { dtype: 'I64', shape: [2], bytes: bytes(new BigInt64Array([-5n, 2n ** 40n + 3n])) },
    'buffers.i32': { dtype: 'I32', shape: [3], bytes: bytes(new Int32Array([-7, 0, 2 ** 31 - 1])) },
    'buffers.i16': { dtype: 'I16', shape: [2], bytes: bytes(new Int16Array([-300, 300])) },
    'buffers.i8': { dtype: 'I8', shape: [2], bytes: bytes(new Int8Array([-128, 127])) },
    'buffers.u8': { dtype: 'U8', shape: [2, 1], bytes: new Uint8Array([0, 255]) },
    'buffers.mask': { dtype: 'BOOL', shape: [3], bytes: new Uint8Array([1, 0, 1]) },
    scale: { dtype: 'F32', shape: [], values: [one ? 1 : 3] },
    empty: { dtype: 'F32', shape: [0, 3], values: [] },
  };
}

/** What torch must load: names in order, torch dtypes, shapes, values. */
const expected: [string, string, number[], unknown][] = [
  [
    'layer.weight',
    'torch.float32',
    [2, 3],
    [
      [2, 3, 4],
      [5, 6, 7],
    ],
  ],
  ['layer.f64', 'torch.float64', [3], [0.5, 0.5, 2e10]],
  ['layer.f16', 'torch.float16', [2], [2, 3]],
  ['layer.bf16', 'torch.bfloat16', [2], [2, 3]],
  ['buffers.i64', 'torch.int64', [2], [-5, 2 ** 40 + 3]],
  ['buffers.i32', 'torch.int32', [3], [-7, 0, 2 ** 31 - 1]],
  ['buffers.i16', 'torch.int16', [2], [-300, 300]],
  ['buffers.i8', 'torch.int8', [2], [-128, 127]],
  ['buffers.u8', 'torch.uint8', [2, 1], [[0], [255]]],
  ['buffers.mask', 'torch.bool', [3], [true, false, true]],
  ['scale', 'torch.float32', [], 2],
  ['empty', 'torch.float32', [0, 3], []],
];

async function pair(name: string, edit?: (tensors: Record<string, RawTensor>, seed: 1 | 2) => void): Promise<string[]> {
  const files = [];
  for (const seed of [1, 2] as const) {
    const tensors = ingredient(seed);
    edit?.(tensors, seed);
    files.push(await writeSafetensorsFile(path.join(dir, name, `run-${seed}.safetensors`), tensors));
  }
  return files;
}

const leftovers = async (folder: string): Promise<string[]> => (await readdir(folder)).filter((f) => f.includes('.tmp-'));

describe('soup uniform -o soup.pt', () => {
  it('writes a torch.save file that torch.load(weights_only=True) loads with every name, dtype, shape and mean value', async () => {
    const inputs = await pair('dtypes');
    const out = path.join(dir, 'soup.pt');
    const result = await runSoup(['uniform', ...inputs, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^ {2}written {6}.* \(pytorch\)$/m);
    const loaded = (await loadWithTorch(out))[0]!;
    assert.equal(loaded.type, 'OrderedDict');
    assert.deepEqual(loaded.tensors, expected);
    assert.equal(loaded.plainLoadAgrees, true, 'plain torch.load ignores the recipe record too');
    assert.equal(loaded.badCrc, null, 'zipfile finds every CRC-32 right');
    assert.deepEqual(
      loaded.misalignment,
      loaded.records.map(() => 0),
      'every record starts on a 64-byte boundary',
    );
    assert.deepEqual(loaded.records.slice(0, 2), ['archive/data.pkl', 'archive/byteorder']);
    assert.deepEqual(loaded.records.slice(-2), ['archive/version', 'archive/soup.recipe']);
    const recipe = loaded.recipe as { strategy: string; chosen: string[]; ingredients: { name: string; sha256: Record<string, string> }[] };
    assert.equal(recipe.strategy, 'uniform');
    assert.deepEqual(recipe.chosen, ['run-1', 'run-2']);
    assert.match(recipe.ingredients[0]!.sha256['run-1.safetensors']!, /^[0-9a-f]{64}$/, 'real hashes, not placeholders');
    assert.notEqual(recipe.ingredients[0]!.sha256['run-1.safetensors'], '0'.repeat(64));
  });

  it('writes .pth, .bin and .ckpt outputs as torch.save files too, and says so in --json', async () => {
    const inputs = await pair('suffixes');
    const outs = ['.pth', '.bin', '.ckpt'].map((suffix) => path.join(dir, `soup${suffix}`));
    for (const out of outs) {
      const result = await runSoup(['uniform', ...inputs, '-o', out, '--json']);
      assert.equal(result.code, 0, result.stderr);
      assert.equal(JSON.parse(result.stdout).format, 'pytorch');
    }
    assert.deepEqual(
      (await loadWithTorch(...outs)).map((loaded) => loaded.tensors),
      outs.map(() => expected),
    );
  });

  it('converts floats with --dtype before writing them', async () => {
    const inputs = await pair('dtype-flag');
    const out = path.join(dir, 'half.pt');
    const result = await runSoup(['uniform', ...inputs, '-o', out, '--dtype', 'bf16']);
    assert.equal(result.code, 0, result.stderr);
    const loaded = (await loadWithTorch(out))[0]!;
    assert.deepEqual(
      loaded.tensors.filter(([, dtype]) => dtype.startsWith('torch.float') || dtype === 'torch.bfloat16').map(([name, dtype]) => [name, dtype]),
      [
        ['layer.weight', 'torch.bfloat16'],
        ['layer.f64', 'torch.bfloat16'],
        ['layer.f16', 'torch.bfloat16'],
        ['layer.bf16', 'torch.bfloat16'],
        ['scale', 'torch.bfloat16'],
        ['empty', 'torch.bfloat16'],
      ],
    );
  });

  it('refuses unsigned tensors wider than a byte, which torch.save files cannot hold, before writing anything', async () => {
    const inputs = await pair('unsigned', (tensors) => {
      tensors.counts = { dtype: 'U32', shape: [1], bytes: new Uint8Array(4) };
    });
    const out = path.join(dir, 'unsigned.pt');
    const result = await runSoup(['uniform', ...inputs, '-o', out]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${out}: a torch.save file cannot store U32 tensors (tensor "counts") (write a .safetensors file instead)\n`);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith('unsigned')),
      ['unsigned'],
    );
  });

  it('leaves neither the output nor a temporary file when the soup fails halfway through writing', async () => {
    const inputs = await pair('nan', (tensors, seed) => {
      if (seed === 2) tensors.empty = { dtype: 'F32', shape: [1, 3], values: [0, NaN, 0] };
      else tensors.empty = { dtype: 'F32', shape: [1, 3], values: [0, 0, 0] };
    });
    const out = path.join(dir, 'nan.pt');
    const result = await runSoup(['uniform', ...inputs, '-o', out]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /^soup: error: .*run-2\.safetensors: tensor "empty": holds NaN at element 1/);
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.startsWith('nan') || f.startsWith('.nan')),
      ['nan'],
    );
    assert.deepEqual(await leftovers(dir), []);
  });
});

describe('PyTorch ingredients to PyTorch soups', () => {
  const fixtures = new URL('../../../fixtures/torch/', import.meta.url).pathname;
  const runValues = JSON.parse(readFileSync(path.join(fixtures, 'expected.json'), 'utf8')).fixtures as Record<
    string,
    { tensors: Record<string, { values: number[] }> }
  >;

  /** Two copies of a fixture under different names, as two ingredients. */
  async function twoCopies(fixture: string, name: string): Promise<string> {
    const folder = path.join(dir, name);
    for (const copy of ['a', 'b']) await cp(path.join(fixtures, fixture), path.join(folder, copy + path.extname(fixture)), { recursive: true });
    return folder;
  }

  it('soups .pt runs into a .pt file that torch loads with their mean, and inspect shows its recipe', async () => {
    const out = path.join(dir, 'runs-soup.pt');
    const result = await runSoup(['uniform', path.join(fixtures, 'runs'), '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    const loaded = (await loadWithTorch(out))[0]!;
    for (const [name, , , values] of loaded.tensors) {
      const runs = [1, 2, 3].map((i) => runValues[`runs/run-${i}.pt`]!.tensors[name]!.values);
      (values as number[]).flat().forEach((value, j) => assert.ok(Math.abs(value - (runs[0]![j]! + runs[1]![j]! + runs[2]![j]!) / 3) < 1e-6, name));
    }
    const inspected = await runSoup(['inspect', out]);
    assert.match(inspected.stdout, /^ {2}recipe: uniform soup of run-1, run-2, run-3 \(model-soup [^)]+\)$/m);
  });

  it('keeps weights tied in every ingredient tied: one storage in the soup, two names in torch', async () => {
    const out = path.join(dir, 'tied-soup.pt');
    const result = await runSoup(['uniform', await twoCopies('tied.pt', 'tied'), '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    const loaded = (await loadWithTorch(out))[0]!;
    assert.deepEqual(loaded.storageOwner, { 'embed.weight': 'embed.weight', 'hidden.bias': 'hidden.bias', 'head.weight': 'embed.weight' });
    assert.deepEqual(
      loaded.records.filter((record) => record.startsWith('archive/data/')),
      ['archive/data/0', 'archive/data/1'],
    );
    const inspected = JSON.parse((await runSoup(['inspect', out, '--json'])).stdout);
    assert.equal(inspected.checkpoints[0].tensors[2].tiedTo, 'embed.weight');
  });

  it('writes pytorch_model.bin folders, and sharded ones in the same shards with an index, when -o has no suffix', async () => {
    const single = path.join(dir, 'hf-single-soup');
    const sharded = path.join(dir, 'hf-sharded-soup');
    const singleRun = await runSoup(['uniform', await twoCopies('hf-single', 'hf-single'), '-o', single, '--json']);
    assert.equal(singleRun.code, 0, singleRun.stderr);
    assert.equal(JSON.parse(singleRun.stdout).format, 'pytorch-folder');
    assert.deepEqual(await readdir(single), ['README.md', 'config.json', 'pytorch_model.bin'], 'a model folder gets its config and a model card');
    const shardedRun = await runSoup(['uniform', await twoCopies('hf-sharded', 'hf-sharded'), '-o', sharded, '--json']);
    assert.equal(shardedRun.code, 0, shardedRun.stderr);
    assert.equal(JSON.parse(shardedRun.stdout).format, 'pytorch-sharded');
    assert.deepEqual(await readdir(sharded), [
      'README.md',
      'pytorch_model-00001-of-00002.bin',
      'pytorch_model-00002-of-00002.bin',
      'pytorch_model.bin.index.json',
    ]);
    const index = JSON.parse(readFileSync(path.join(sharded, 'pytorch_model.bin.index.json'), 'utf8'));
    assert.deepEqual(index, JSON.parse(readFileSync(path.join(fixtures, 'hf-sharded', 'pytorch_model.bin.index.json'), 'utf8')));
    const [whole, first, second] = await loadWithTorch(
      path.join(single, 'pytorch_model.bin'),
      path.join(sharded, 'pytorch_model-00001-of-00002.bin'),
      path.join(sharded, 'pytorch_model-00002-of-00002.bin'),
    );
    assert.deepEqual(
      whole!.tensors.map(([name]) => name),
      ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'],
    );
    assert.deepEqual(
      [...first!.tensors, ...second!.tensors].map(([name]) => name),
      ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'],
    );
    const original = runValues['hf-sharded']!.tensors['fc2.bias']!.values;
    (second!.tensors[1]![3] as number[]).forEach((value, j) => assert.ok(Math.abs(value - original[j]!) < 1e-6));
  });
});
