import assert from 'node:assert/strict';
import { mkdir, open as open_, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { decodeNumbers, dtypeSize, isFloatDType } from '../../../src/checkpoint/dtype.js';
import { discoverIngredients, openCheckpoint } from '../../../src/checkpoint/discover.js';
import { PytorchFile } from '../../../src/checkpoint/pytorch/reader.js';
import { ShardedPytorch } from '../../../src/checkpoint/pytorch/sharded.js';
import type { Checkpoint } from '../../../src/checkpoint/types.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { f32Bytes, Pickle, pushTensor, simpleArchive, stateDictPickle, storedZip, torchArchive, zipParts } from '../../helpers/torch.js';

const fixtures = new URL('../../../../fixtures/torch/', import.meta.url).pathname;
interface Expected {
  key?: string;
  tensors: Record<string, { dtype: string; shape: number[]; values: (number | string)[]; tiedTo?: string }>;
}
const expected = JSON.parse(await readFile(path.join(fixtures, 'expected.json'), 'utf8')).fixtures as Record<string, Expected>;
const dir = await tempDir('soup-torch-');

/** Every tensor's values as plain numbers or, for 64-bit integers, decimal strings. */
async function valuesOf(checkpoint: Checkpoint, name: string): Promise<(number | string)[]> {
  const tensor = checkpoint.tensors().find((t) => t.name === name)!;
  if (isFloatDType(tensor.dtype)) return [...(await checkpoint.readFloats(name))];
  const bytes = await checkpoint.readBytes(name);
  if (tensor.dtype === 'I64') return [...new BigInt64Array(bytes.slice().buffer)].map(String);
  return Array.from(decodeNumbers(bytes, tensor.dtype));
}

async function assertMatches(checkpoint: Checkpoint, want: Expected): Promise<void> {
  assert.deepEqual(
    checkpoint.tensors().map((t) => t.name),
    Object.keys(want.tensors),
  );
  for (const tensor of checkpoint.tensors()) {
    const spec = want.tensors[tensor.name]!;
    assert.equal(tensor.dtype, spec.dtype, tensor.name);
    assert.deepEqual(tensor.shape, spec.shape, tensor.name);
    assert.equal(tensor.tiedTo, spec.tiedTo, tensor.name);
    assert.equal(tensor.storedBytes, spec.values.length * dtypeSize(tensor.dtype));
    assert.deepEqual(await valuesOf(checkpoint, tensor.name), spec.values, tensor.name);
  }
}

describe('PyTorch reader on files torch.save wrote', () => {
  for (const fixture of [
    'legacy.pt',
    'plain.pt',
    'protocol4.pt',
    'tied.pt',
    'views.pt',
    'dtypes.pt',
    'training.ckpt',
    'hf-single/pytorch_model.bin',
    'runs/run-2.pt',
  ]) {
    it(`reads every tensor of ${fixture} with the values torch saved`, async () => {
      const checkpoint = await PytorchFile.open(path.join(fixtures, fixture));
      try {
        await assertMatches(checkpoint, expected[fixture]!);
      } finally {
        await checkpoint.close();
      }
    });
  }

  it('reads strided views chunk by chunk, into reused scratch buffers, as a whole read does', async () => {
    const checkpoint = await PytorchFile.open(path.join(fixtures, 'views.pt'));
    const scratch = { bytes: new Uint8Array(64), floats: new Float32Array(16) };
    for (const tensor of checkpoint.tensors()) {
      const whole = [...(await checkpoint.readFloats(tensor.name))];
      for (const chunk of [1, 2, 4, 7]) {
        const pieces: number[] = [];
        for (let start = 0; start < whole.length; start += chunk) {
          pieces.push(...(await checkpoint.readFloatRange(tensor.name, start, Math.min(chunk, whole.length - start), scratch)));
        }
        assert.deepEqual(pieces, whole, `${tensor.name} in chunks of ${chunk}`);
      }
    }
    await checkpoint.close();
  });

  it('reads a transposed bf16 view, widening into the scratch floats', async () => {
    const checkpoint = await PytorchFile.open(path.join(fixtures, 'dtypes.pt'));
    const scratch = { bytes: new Uint8Array(8), floats: new Float32Array(4) };
    const values = [...(await checkpoint.readFloatRange('bf16_t', 2, 3, scratch))];
    assert.deepEqual(values, expected['dtypes.pt']!.tensors.bf16_t!.values.slice(2, 5));
    await checkpoint.close();
  });

  it('says which wrapper entry holds the weights and which entries it ignored', async () => {
    const checkpoint = await PytorchFile.open(path.join(fixtures, 'training.ckpt'));
    assert.deepEqual(checkpoint.notes, ['weights from entry "model_state_dict"; ignored: epoch, optimizer_state_dict, loss']);
    await checkpoint.close();
  });

  it('refuses --key naming an entry that holds no tensors, listing the entries there are', async () => {
    await assert.rejects(PytorchFile.open(path.join(fixtures, 'training.ckpt'), 'training', { key: 'epoch' }), {
      message: `${path.join(fixtures, 'training.ckpt')}: entry "epoch" is 3 without tensors, not a state dict`,
    });
    await assert.rejects(PytorchFile.open(path.join(fixtures, 'training.ckpt'), 'training', { key: 'ema' }), {
      message: `${path.join(fixtures, 'training.ckpt')}: has no entry "ema" (its entries: epoch, model_state_dict, optimizer_state_dict, loss)`,
    });
  });

  it('reads a sharded Hugging Face folder with the shard layout of its index', async () => {
    const checkpoint = await ShardedPytorch.open(path.join(fixtures, 'hf-sharded'));
    await assertMatches(checkpoint, expected['hf-sharded']!);
    assert.equal(checkpoint.format, 'pytorch-sharded');
    assert.deepEqual(Object.fromEntries(checkpoint.shardLayout()), (expected['hf-sharded'] as unknown as { shards: Record<string, string> }).shards);
    await checkpoint.close();
  });

  it('reads the legacy (pre-1.6) torch.save format with the same unpickler, and says so', async () => {
    const checkpoint = await PytorchFile.open(path.join(fixtures, 'legacy.pt'));
    await assertMatches(checkpoint, expected['legacy.pt']!);
    assert.deepEqual(checkpoint.notes, ['legacy torch.save format (PyTorch < 1.6)']);
    await checkpoint.close();
  });

  it('refuses a truncated legacy file, naming the storage that runs past its end', async () => {
    const bytes = await readFile(path.join(fixtures, 'legacy.pt'));
    const file = path.join(dir, 'legacy-cut.pt');
    await writeFile(file, bytes.subarray(0, bytes.length - 4));
    await assert.rejects(PytorchFile.open(file), /legacy-cut\.pt: legacy storage \d+ claims 2 elements, more than the file holds \(truncated\?\)$/);
  });

  it('refuses a whole pickled model, naming its class and what to save instead', async () => {
    await assert.rejects(PytorchFile.open(path.join(fixtures, 'whole-model.pt')), {
      message: `${path.join(fixtures, 'whole-model.pt')}: data.pkl: refused global __main__.MLP: this is a whole pickled model (torch.save(model)); save model.state_dict() instead (opcode 0x63 at byte 2)`,
    });
  });

  it('refuses a TorchScript archive', async () => {
    await assert.rejects(PytorchFile.open(path.join(fixtures, 'torchscript.pt')), {
      message: `${path.join(fixtures, 'torchscript.pt')}: is a TorchScript archive (torch.jit.save), which holds code; save model.state_dict() instead, with torch.save`,
    });
  });

  it('refuses a Git LFS pointer file', async () => {
    const file = path.join(dir, 'pointer.bin');
    await writeFile(file, 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 123\n');
    await assert.rejects(PytorchFile.open(file), { message: `${file}: is a Git LFS pointer, not weights: run git lfs pull` });
  });
});

describe('PyTorch reader on archives built byte by byte', () => {
  async function open(name: string, bytes: Uint8Array): Promise<PytorchFile> {
    const file = path.join(dir, name);
    await writeFile(file, bytes);
    return PytorchFile.open(file);
  }

  it('reads an archive under any prefix, with ZIP64 directory fields', async () => {
    for (const [prefix, zip64] of [
      ['my-run', false],
      ['archive', true],
    ] as const) {
      const checkpoint = await open(`${prefix}.pt`, simpleArchive({ prefix, zip64 }));
      assert.deepEqual([...(await checkpoint.readFloats('weight'))], [0, 1, 2, 3, 4, 5]);
      assert.deepEqual([...(await checkpoint.readFloats('bias'))], [10, 11]);
      await checkpoint.close();
    }
  });

  it('reads storages past 2 GiB and 4 GiB by offset, in sparse files, without reading the whole file', async () => {
    for (const [gap, zip64] of [
      [2 ** 31 + 12345, false],
      [2 ** 32 + 12345, true],
    ] as const) {
      const file = path.join(dir, `large-${zip64 ? 'zip64' : 'zip32'}.pt`);
      const handle = await open_(file, 'w');
      const parts = zipParts(
        [
          { name: 'large/data.pkl', data: stateDictPickle([{ name: 'w', key: '0', numel: 3, shape: [3] }]) },
          { name: 'large/data/0', data: f32Bytes([1.5, 2.5, 3.5]), gap },
          { name: 'large/version', data: Buffer.from('3\n') },
        ],
        { zip64 },
      );
      for (const part of parts) await handle.write(part.bytes, 0, part.bytes.length, part.offset);
      await handle.close();
      assert.ok((await stat(file)).size > gap);
      const checkpoint = await PytorchFile.open(file);
      assert.deepEqual([...(await checkpoint.readFloats('w'))], [1.5, 2.5, 3.5]);
      assert.deepEqual([...(await checkpoint.readFloatRange('w', 1, 2))], [2.5, 3.5]);
      await checkpoint.close();
      await rm(file);
    }
  });

  it('byte-swaps the data of an archive whose byteorder record says big', async () => {
    const big = Buffer.alloc(8);
    big.writeFloatBE(1.5, 0);
    big.writeFloatBE(-2, 4);
    const bytes = torchArchive(
      [{ name: 'w', key: '0', numel: 2, shape: [2] }],
      { '0': big },
      { extra: [{ name: 'archive/byteorder', data: Buffer.from('big') }] },
    );
    const checkpoint = await open('big.pt', bytes);
    assert.deepEqual([...(await checkpoint.readFloats('w'))], [1.5, -2]);
    assert.deepEqual([...(await checkpoint.readFloatRange('w', 1, 1))], [-2]);
    await checkpoint.close();
  });

  it('puts the recipe record into the metadata, where soup inspect shows it', async () => {
    const recipe = JSON.stringify({ tool: 'soup', strategy: 'uniform' });
    const checkpoint = await open('recipe.pt', simpleArchive({ extra: [{ name: 'archive/soup.recipe', data: Buffer.from(recipe) }] }));
    assert.deepEqual(checkpoint.metadata, { 'soup.recipe': recipe });
    await checkpoint.close();
  });

  it('reads a tensor that _rebuild_tensor_v3 describes over an untyped storage, and a Parameter', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    p.unicode('half').global('torch._utils', '_rebuild_tensor_v3').mark();
    p.mark().unicode('storage').global('torch', 'UntypedStorage').unicode('0').unicode('cpu').int(8).tuple().binPersId();
    p.int(1).ints([3]).ints([1]).bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().global('torch', 'float16').tuple().reduce();
    p.unicode('param').global('torch._utils', '_rebuild_parameter');
    pushTensor(p.mark(), { name: 'param', key: '1', numel: 2, shape: [2] })
      .bool(true)
      .global('collections', 'OrderedDict')
      .emptyTuple()
      .reduce()
      .tuple()
      .reduce();
    p.setItems().stop();
    const halves = new Uint8Array(new Uint16Array([0x3c00, 0x4000, 0xc000, 0x3800]).buffer);
    const checkpoint = await open('v3.pt', torchArchive([], { '0': halves, '1': f32Bytes([7, 8]) }, { pickle: p.bytes() }));
    assert.deepEqual(
      checkpoint.tensors().map((t) => [t.name, t.dtype, t.shape]),
      [
        ['half', 'F16', [3]],
        ['param', 'F32', [2]],
      ],
    );
    assert.deepEqual([...(await checkpoint.readFloats('half'))], [2, -2, 0.5]);
    assert.deepEqual([...(await checkpoint.readFloats('param'))], [7, 8]);
    await checkpoint.close();
  });

  const refusals: [string, Uint8Array, string][] = [
    [
      'a storage shorter than the pickle claims',
      torchArchive([{ name: 'w', key: '0', numel: 6, shape: [2, 3] }], { '0': f32Bytes([1, 2, 3]) }),
      'tensor "w": its storage archive/data/0 holds 12 bytes but the pickle says 6 elements of torch.FloatStorage (24 bytes)',
    ],
    [
      'a view past the end of its storage',
      torchArchive([{ name: 'w', key: '0', numel: 4, offset: 2, shape: [2, 2], stride: [2, 1] }], { '0': f32Bytes([1, 2, 3, 4]) }),
      'tensor "w": view (offset 2, size [2, 2], stride [2, 1]) reaches element 5 of a storage of 4 elements',
    ],
    [
      'a stride that leaves the storage',
      torchArchive([{ name: 'w', key: '0', numel: 4, shape: [2], stride: [1000] }], { '0': f32Bytes([1, 2, 3, 4]) }),
      'tensor "w": view (offset 0, size [2], stride [1000]) reaches element 1000 of a storage of 4 elements',
    ],
    [
      'a huge shape',
      torchArchive([{ name: 'w', key: '0', numel: 4, shape: [2 ** 30, 2 ** 30, 2 ** 30], stride: [0, 0, 0] }], { '0': f32Bytes([1, 2, 3, 4]) }),
      'tensor "w": shape [1073741824, 1073741824, 1073741824] is too large',
    ],
    [
      'a missing storage record',
      torchArchive([{ name: 'w', key: '7', numel: 1, shape: [1] }], {}),
      'tensor "w": its storage archive/data/7 is missing from the archive',
    ],
    [
      'a compressed storage record',
      torchArchive([{ name: 'w', key: '0', numel: 1, shape: [1] }], {}, { extra: [{ name: 'archive/data/0', data: f32Bytes([1]), method: 8 }] }),
      'record archive/data/0 is compressed (zip method 8); torch.save stores records uncompressed',
    ],
    [
      'a complex tensor',
      torchArchive([{ name: 'z', key: '0', storage: 'ComplexFloatStorage', numel: 1, shape: [1] }], { '0': new Uint8Array(8) }),
      'tensor "z": complex64 tensors are not supported',
    ],
  ];

  for (const [what, bytes, message] of refusals) {
    it(`refuses ${what}, naming the tensor`, async () => {
      const file = path.join(dir, 'bad.pt');
      await writeFile(file, bytes);
      await assert.rejects(PytorchFile.open(file), { message: `${file}: ${message}` });
    });
  }

  it('refuses a quantized tensor, naming it', async () => {
    const p = new Pickle().proto(2).emptyDict().unicode('q').global('torch._utils', '_rebuild_qtensor').emptyTuple().reduce().setItem().stop();
    const file = path.join(dir, 'quantized.pt');
    await writeFile(file, torchArchive([], {}, { pickle: p.bytes() }));
    await assert.rejects(PytorchFile.open(file), { message: `${file}: tensor "q": is a quantized tensor, which soup does not support` });
  });

  it('refuses an archive without data.pkl', async () => {
    const file = path.join(dir, 'nopickle.pt');
    await writeFile(file, storedZip([{ name: 'archive/version', data: Buffer.from('3\n') }]));
    await assert.rejects(PytorchFile.open(file), { message: `${file}: has no archive/data.pkl record: not a torch.save archive` });
  });

  it('refuses a state dict that is not a dict, and a dict without tensors, with the way out', async () => {
    const list = new Pickle().proto(2).emptyList().stop().bytes();
    const empty = new Pickle().proto(2).emptyDict().unicode('epoch').int(3).setItem().stop().bytes();
    const file = path.join(dir, 'nodict.pt');
    await writeFile(file, torchArchive([], {}, { pickle: list }));
    await assert.rejects(PytorchFile.open(file), { message: `${file}: holds a list, not a dict of tensors (a state dict)` });
    await writeFile(file, torchArchive([], {}, { pickle: empty }));
    await assert.rejects(PytorchFile.open(file), {
      message: `${file}: holds no tensors at its top level nor under state_dict, model, model_state_dict, module (its entries: epoch)`,
      hint: 'pick the entry that holds the weights with --key NAME',
    });
  });

  it('keeps tensor names exactly as stored and notes non-tensor entries it ignored', async () => {
    const p = new Pickle().proto(2).emptyDict().mark();
    pushTensor(p.unicode('module.fc.weight'), { name: '', key: '0', numel: 2, shape: [2] });
    p.unicode('_metadata_version').int(1).setItems().stop();
    const checkpoint = await open('names.pt', torchArchive([], { '0': f32Bytes([1, 2]) }, { pickle: p.bytes() }));
    assert.deepEqual(
      checkpoint.tensors().map((t) => t.name),
      ['module.fc.weight'],
    );
    assert.deepEqual(checkpoint.notes, ['ignored entries that are not tensors: _metadata_version']);
    await checkpoint.close();
  });

  it('marks a tensor tied only when storage, offset, shape and strides all agree', async () => {
    const specs = [
      { name: 'a', key: '0', numel: 4, shape: [2, 2] },
      { name: 'b', key: '0', numel: 4, shape: [2, 2] },
      { name: 'c', key: '0', numel: 4, shape: [2, 2], stride: [1, 2] },
      { name: 'd', key: '0', numel: 4, offset: 2, shape: [2], stride: [1] },
    ];
    const checkpoint = await open('tied.pt', torchArchive(specs, { '0': f32Bytes([1, 2, 3, 4]) }));
    assert.deepEqual(
      checkpoint.tensors().map((t) => t.tiedTo),
      [undefined, 'a', undefined, undefined],
    );
    assert.deepEqual([...(await checkpoint.readFloats('c'))], [1, 3, 2, 4]);
    assert.deepEqual([...(await checkpoint.readFloats('d'))], [3, 4]);
    await checkpoint.close();
  });

  it('gathers a permuted 3-D view in chunks of any size', async () => {
    const values = Array.from({ length: 24 }, (_, i) => i);
    const checkpoint = await open(
      'permuted.pt',
      torchArchive([{ name: 'p', key: '0', numel: 24, shape: [2, 3, 4], stride: [1, 2, 6] }], { '0': f32Bytes(values) }),
    );
    const want: number[] = [];
    for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) for (let c = 0; c < 4; c++) want.push(a + 2 * b + 6 * c);
    for (const chunk of [1, 5, 24]) {
      const got: number[] = [];
      for (let start = 0; start < 24; start += chunk) got.push(...(await checkpoint.readFloatRange('p', start, Math.min(chunk, 24 - start))));
      assert.deepEqual(got, want, `chunks of ${chunk}`);
    }
    assert.deepEqual([...(await checkpoint.readFloats('p'))], want);
    await checkpoint.close();
  });

  it('gathers a large transposed view chunk by chunk from one read of its storage', async () => {
    const [rows, cols] = [300, 200];
    const values = Array.from({ length: rows * cols }, (_, i) => i);
    const checkpoint = await open(
      'transposed.pt',
      torchArchive([{ name: 't', key: '0', numel: rows * cols, shape: [cols, rows], stride: [1, cols] }], { '0': f32Bytes(values) }),
    );
    const chunk = 777;
    const scratch = { bytes: new Uint8Array(chunk * 4) };
    for (let start = 0; start < rows * cols; start += chunk) {
      const got = await checkpoint.readFloatRange('t', start, Math.min(chunk, rows * cols - start), scratch);
      for (let i = 0; i < got.length; i++) {
        const [c, r] = [Math.floor((start + i) / rows), (start + i) % rows];
        if (got[i] !== r * cols + c) assert.fail(`element ${start + i} is ${got[i]}, expected ${r * cols + c}`);
      }
    }
    await checkpoint.close();
  });
});

describe('PyTorch layouts', () => {
  it('finds .pt, .pth, .bin and .ckpt files, pytorch_model.bin folders and sharded folders', async () => {
    const folder = path.join(dir, 'layouts');
    await mkdir(path.join(folder, 'hf'), { recursive: true });
    for (const name of ['a.pt', 'b.pth', 'c.bin', 'd.ckpt', 'hf/pytorch_model.bin']) await writeFile(path.join(folder, name), simpleArchive());
    const found = await discoverIngredients([folder, path.join(fixtures, 'hf-sharded')]);
    assert.deepEqual(
      found.map((i) => [i.name, path.relative(dir, i.path), i.format]),
      [
        ['a', 'layouts/a.pt', 'pytorch'],
        ['b', 'layouts/b.pth', 'pytorch'],
        ['c', 'layouts/c.bin', 'pytorch'],
        ['d', 'layouts/d.ckpt', 'pytorch'],
        ['hf', 'layouts/hf/pytorch_model.bin', 'pytorch'],
        ['hf-sharded', path.relative(dir, path.join(fixtures, 'hf-sharded')), 'pytorch-sharded'],
      ],
    );
    const checkpoint = await openCheckpoint(found[4]!);
    assert.equal(checkpoint.name, 'hf');
    await checkpoint.close();
  });

  it('uses the safetensors of a folder that also holds pytorch_model.bin, and says so', async () => {
    const folder = path.join(dir, 'both');
    await mkdir(folder, { recursive: true });
    await writeFile(path.join(folder, 'pytorch_model.bin'), simpleArchive());
    await writeSafetensorsFile(path.join(folder, 'model.safetensors'), mlpTensors(1));
    const warnings: string[] = [];
    const found = await discoverIngredients([folder], { onWarning: (message) => warnings.push(message) });
    assert.deepEqual(
      found.map((i) => i.format),
      ['safetensors'],
    );
    assert.deepEqual(warnings, [`${folder} holds both safetensors and PyTorch weights: using model.safetensors, ignoring pytorch_model.bin`]);
  });

  it('passes --key to every PyTorch ingredient', async () => {
    const p = new Pickle().proto(2).emptyDict().unicode('ema').emptyDict();
    pushTensor(p.unicode('w'), { name: 'w', key: '0', numel: 2, shape: [2] })
      .setItem()
      .setItem()
      .stop();
    const file = path.join(dir, 'ema.pt');
    await writeFile(file, torchArchive([], { '0': f32Bytes([3, 4]) }, { pickle: p.bytes() }));
    const [ingredient] = await discoverIngredients([file], { key: 'ema' });
    const checkpoint = await openCheckpoint(ingredient!);
    assert.deepEqual([...(await checkpoint.readFloats('w'))], [3, 4]);
    assert.deepEqual(checkpoint.notes, ['weights from entry "ema"']);
    await checkpoint.close();
  });
});
