import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { pickleStateDict } from '../../../src/checkpoint/pytorch/pickle-writer.js';
import { writeTorchFile } from '../../../src/checkpoint/pytorch/writer.js';
import type { TensorProducer } from '../../../src/checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor, TensorInfo } from '../../../src/checkpoint/types.js';
import { chooseOutput } from '../../../src/checkpoint/formats.js';
import { fixedMetadata, keepTies, writeCheckpoint } from '../../../src/checkpoint/writer.js';
import { f32, once, tempDir } from '../../helpers/files.js';
import { loadWithTorch, runPython } from '../../helpers/torch-python.js';

const dir = await tempDir();

/** Float32 values 0, 1, 2, ... offset by `start`, for each tensor a different run. */
function producer(asked: string[] = []): TensorProducer {
  const starts = new Map<string, number>();
  return (tensor) => {
    asked.push(tensor.name);
    const start = (starts.size + 1) * 100;
    starts.set(tensor.name, start);
    const count = tensor.shape.reduce((a, b) => a * b, 1);
    return once(f32(Array.from({ length: count }, (_, i) => start + i)));
  };
}

const tensors: OutputTensor[] = [
  { name: 'embed.weight', shape: [3, 2], dtype: 'F32' },
  { name: 'head.bias', shape: [2], dtype: 'F32' },
  { name: 'head.weight', shape: [3, 2], dtype: 'F32', tiedTo: 'embed.weight' },
];

function fakeCheckpoint(format: Checkpoint['format'], infos: Partial<TensorInfo>[], layout?: Map<string, string>): Checkpoint {
  const checkpoint = { name: 'fake', path: 'fake', format, metadata: {}, files: [], tensors: () => infos as TensorInfo[] };
  return (layout === undefined ? checkpoint : { ...checkpoint, shardLayout: () => layout }) as unknown as Checkpoint;
}

describe('writeTorchFile', () => {
  it('stores a tied tensor once, never asks the producer for it, and torch loads both names as one storage', async () => {
    const out = path.join(dir, 'tied.pt');
    const asked: string[] = [];
    await writeCheckpoint({ kind: 'pytorch', path: out }, tensors, fixedMetadata({ 'soup.recipe': '{"strategy":"test"}', format: 'pt' }), producer(asked));
    assert.deepEqual(asked, ['embed.weight', 'head.bias']);
    const loaded = (await loadWithTorch(out))[0]!;
    assert.deepEqual(loaded.storageOwner, { 'embed.weight': 'embed.weight', 'head.bias': 'head.bias', 'head.weight': 'embed.weight' });
    assert.deepEqual(loaded.tensors, [
      [
        'embed.weight',
        'torch.float32',
        [3, 2],
        [
          [100, 101],
          [102, 103],
          [104, 105],
        ],
      ],
      ['head.bias', 'torch.float32', [2], [200, 201]],
      [
        'head.weight',
        'torch.float32',
        [3, 2],
        [
          [100, 101],
          [102, 103],
          [104, 105],
        ],
      ],
    ]);
    assert.deepEqual(loaded.records, ['archive/data.pkl', 'archive/byteorder', 'archive/data/0', 'archive/data/1', 'archive/version', 'archive/soup.recipe']);
    assert.deepEqual(loaded.recipe, { strategy: 'test' });
    assert.equal(loaded.plainLoadAgrees, true);
  });

  it('moves sizes and offsets at or above the ZIP64 threshold into ZIP64 fields, and torch and zipfile read the result', async () => {
    const all = path.join(dir, 'zip64-all.pt');
    const some = path.join(dir, 'zip64-some.pt');
    const big: OutputTensor[] = [...tensors.slice(0, 2), { name: 'big', shape: [100], dtype: 'F32' }];
    await writeTorchFile(all, big, fixedMetadata({}), producer(), { zip64Threshold: 0 });
    await writeTorchFile(some, big, fixedMetadata({}), producer(), { zip64Threshold: 300 });
    const loaded = (await loadWithTorch(all))[0]!;
    assert.equal(loaded.badCrc, null);
    assert.deepEqual(loaded.misalignment, [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(loaded.zip64Records, loaded.records);
    assert.deepEqual(
      loaded.tensors.map(([name, , shape]) => [name, shape]),
      [
        ['embed.weight', [3, 2]],
        ['head.bias', [2]],
        ['big', [100]],
      ],
    );
    assert.equal((loaded.tensors[2]![3] as number[])[99], 399);
    // miniz (torch's zip reader) rejects a record whose 32-bit offset field says "see ZIP64" while its
    // size is small, unless the file really is over 4 GiB; so the mixed layout is checked by zipfile alone.
    const mixed = await runPython<{ badCrc: string | null; zip64: [string, number, number][] }>(
      `
import json, sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print(json.dumps({'badCrc': z.testzip(), 'zip64': [[i.filename, i.header_offset, i.file_size] for i in z.infolist() if b'\\x01\\x00' == i.extra[:2]]}))
`,
      [some],
    );
    assert.equal(mixed.badCrc, null);
    assert.deepEqual(
      mixed.zip64.map(([name, offset, size]) => [name, offset >= 300 || size >= 300]),
      ['byteorder', 'data/0', 'data/1', 'data/2', 'version'].map((name) => [`archive/${name}`, true]),
    );
    for (const file of [all, some]) {
      const bytes = await readFile(file);
      assert.notEqual(bytes.indexOf(Buffer.from([0x50, 0x4b, 0x06, 0x06])), -1, 'a ZIP64 end of central directory record');
      assert.equal(bytes.readUInt16LE(bytes.length - 22 + 10), 0xffff, 'the classic record defers to it');
    }
  });
});

describe('pickleStateDict', () => {
  it('pickles sizes, strides and offsets beyond 2^31 exactly, with only the opcodes and globals torch 1.13 allows', async () => {
    const file = path.join(dir, 'huge.pkl');
    const broadcast = path.join(dir, 'broadcast.pkl');
    const huge = { name: 'huge', dtype: 'BF16' as const, storageKey: '7', storageElements: 2 ** 53 - 1, storageOffset: 2 ** 40 };
    await writeFile(file, pickleStateDict([{ ...huge, shape: [3_000_000_000, 2 ** 31, 1, 70_000], stride: [2 ** 31, 1, 0, 65_535] }]));
    // A tensor of 3e9 elements over a 1-element storage (stride 0): real torch rebuilds it without allocating.
    await writeFile(
      broadcast,
      pickleStateDict([{ name: 'b', dtype: 'F32', storageKey: '0', storageElements: 1, storageOffset: 0, shape: [3_000_000_000], stride: [0] }]),
    );
    const script = `
import collections, io, json, pickle, pickletools, sys, torch
import torch._weights_only_unpickler as w
data = open(sys.argv[1], 'rb').read()
allowed = {v[0] for k, v in vars(w).items() if k.isupper() and isinstance(v, bytes) and len(v) == 1}
ops = list(pickletools.genops(data))
class Named:
    def __init__(self, name): self.name = name
    def __call__(self, *args): return {'call': self.name, 'args': list(args)}
class Stub(pickle.Unpickler):
    def find_class(self, module, name):
        return collections.OrderedDict if name == 'OrderedDict' else Named(module + '.' + name)
    def persistent_load(self, pid): return list(pid)
u = w.Unpickler(io.BytesIO(open(sys.argv[2], 'rb').read()))
u.persistent_load = lambda pid: torch.FloatStorage(1)
b = u.load()['b']
print(json.dumps({
  'badOps': [op.name for op, _, _ in ops if op.code.encode('latin-1')[0] not in allowed],
  'badGlobals': [arg for op, arg, _ in ops if op.name == 'GLOBAL' and arg.replace(' ', '.') not in w._get_allowed_globals()],
  'stub': Stub(io.BytesIO(data)).load(),
  'broadcast': [list(b.shape), list(b.stride()), str(b.dtype)],
}, default=lambda o: o.name))
`;
    const result = await runPython<{ badOps: string[]; badGlobals: string[]; stub: unknown; broadcast: unknown }>(script, [file, broadcast]);
    assert.deepEqual(result.badOps, []);
    assert.deepEqual(result.badGlobals, []);
    assert.deepEqual(result.stub, {
      huge: {
        call: 'torch._utils._rebuild_tensor_v2',
        args: [['storage', 'torch.BFloat16Storage', '7', 'cpu', 2 ** 53 - 1], 2 ** 40, [3_000_000_000, 2 ** 31, 1, 70_000], [2 ** 31, 1, 0, 65_535], false, {}],
      },
    });
    assert.deepEqual(result.broadcast, [[3_000_000_000], [0], 'torch.float32']);
  });
});

describe('torch output targets', () => {
  it('writes one torch.save file for .pt, .pth, .bin and .ckpt, and a folder in the layout of torch ingredients otherwise', () => {
    const safetensors = fakeCheckpoint('safetensors', []);
    for (const out of ['a.pt', 'a.pth', 'a.bin', 'a.ckpt']) assert.deepEqual(chooseOutput(out, safetensors), { kind: 'pytorch', path: out });
    assert.deepEqual(chooseOutput('soup', fakeCheckpoint('pytorch', [])), { kind: 'pytorch-folder', path: 'soup' });
    const layout = new Map([['w', 'pytorch_model-00001-of-00001.bin']]);
    assert.deepEqual(chooseOutput('soup', fakeCheckpoint('pytorch-sharded', [], layout)), { kind: 'pytorch-sharded', path: 'soup', layout });
    assert.deepEqual(chooseOutput('soup.safetensors', fakeCheckpoint('pytorch', [])), { kind: 'safetensors', path: 'soup.safetensors' });
  });

  it('keeps a tie only where every ingredient has it, the target stores aliases, and both tensors share a shard', () => {
    const plan: OutputTensor[] = tensors.map(({ tiedTo: _, ...tensor }) => tensor);
    const tied = fakeCheckpoint('pytorch', [{ name: 'embed.weight' }, { name: 'head.bias' }, { name: 'head.weight', tiedTo: 'embed.weight' }]);
    const untied = fakeCheckpoint('pytorch', [{ name: 'embed.weight' }, { name: 'head.bias' }, { name: 'head.weight' }]);
    const ties = (target: Parameters<typeof keepTies>[0], ingredients: Checkpoint[]) => keepTies(target, plan, ingredients).map((t) => t.tiedTo);
    assert.deepEqual(ties({ kind: 'pytorch', path: 'x.pt' }, [tied, tied]), [undefined, undefined, 'embed.weight']);
    assert.deepEqual(ties({ kind: 'pytorch', path: 'x.pt' }, [tied, untied]), [undefined, undefined, undefined]);
    assert.deepEqual(ties({ kind: 'safetensors', path: 'x.safetensors' }, [tied, tied]), [undefined, undefined, undefined]);
    const split = new Map([
      ['embed.weight', 'a.bin'],
      ['head.bias', 'b.bin'],
      ['head.weight', 'b.bin'],
    ]);
    assert.deepEqual(ties({ kind: 'pytorch-sharded', path: 'x', layout: split }, [tied]), [undefined, undefined, undefined]);
    const together = new Map([
      ['embed.weight', 'a.bin'],
      ['head.bias', 'b.bin'],
      ['head.weight', 'a.bin'],
    ]);
    assert.deepEqual(ties({ kind: 'pytorch-sharded', path: 'x', layout: together }, [tied]), [undefined, undefined, 'embed.weight']);
  });

  it('writes a pytorch_model.bin folder, and a sharded folder with the same shards and a pytorch_model.bin.index.json', async () => {
    const folder = path.join(dir, 'folder');
    const sharded = path.join(dir, 'sharded');
    const layout = new Map([
      ['embed.weight', 'pytorch_model-00001-of-00002.bin'],
      ['head.bias', 'pytorch_model-00002-of-00002.bin'],
      ['head.weight', 'pytorch_model-00001-of-00002.bin'],
    ]);
    const metadata = fixedMetadata({ 'soup.recipe': '{}' });
    const written = await writeCheckpoint({ kind: 'pytorch-folder', path: folder }, tensors, metadata, producer());
    assert.deepEqual(written.files, [path.join(folder, 'pytorch_model.bin')]);
    const asked: string[] = [];
    await writeCheckpoint({ kind: 'pytorch-sharded', path: sharded, layout }, tensors, metadata, producer(asked));
    assert.deepEqual(asked, ['embed.weight', 'head.bias'], 'the tie is kept inside the first shard');
    assert.deepEqual(await readdir(sharded), ['pytorch_model-00001-of-00002.bin', 'pytorch_model-00002-of-00002.bin', 'pytorch_model.bin.index.json']);
    assert.deepEqual(JSON.parse(await readFile(path.join(sharded, 'pytorch_model.bin.index.json'), 'utf8')), {
      metadata: { total_size: 32 },
      weight_map: Object.fromEntries(layout),
    });
    const [single, first, second] = await loadWithTorch(
      path.join(folder, 'pytorch_model.bin'),
      path.join(sharded, 'pytorch_model-00001-of-00002.bin'),
      path.join(sharded, 'pytorch_model-00002-of-00002.bin'),
    );
    assert.deepEqual(
      single!.tensors.map(([name]) => name),
      ['embed.weight', 'head.bias', 'head.weight'],
    );
    assert.deepEqual(
      first!.tensors.map(([name, , , values]) => [name, values]),
      [
        [
          'embed.weight',
          [
            [100, 101],
            [102, 103],
            [104, 105],
          ],
        ],
        [
          'head.weight',
          [
            [100, 101],
            [102, 103],
            [104, 105],
          ],
        ],
      ],
    );
    assert.deepEqual(first!.storageOwner['head.weight'], 'embed.weight');
    assert.deepEqual(
      second!.tensors.map(([name, , , values]) => [name, values]),
      [['head.bias', [200, 201]]],
    );
  });
});
