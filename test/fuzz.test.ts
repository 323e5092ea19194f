/**
 * Property-based fuzzing of every parser: random mutations of valid files must end in a typed error
 * (SoupError: exit 2) or a correct read; never another exception, a hang, or a large allocation.
 * CI runs a bounded number of cases; SOUP_FUZZ_RUNS=5000 npm test runs many more.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { zipSync } from 'fflate';
import { isFloatDType } from '../src/checkpoint/dtype.js';
import { encodeModel } from '../src/checkpoint/onnx/build.js';
import { OnnxCheckpoint } from '../src/checkpoint/onnx/reader.js';
import { SafetensorsFile } from '../src/checkpoint/safetensors.js';
import { ShardedSafetensors, shardFileName } from '../src/checkpoint/sharded.js';
import { TfjsCheckpoint } from '../src/checkpoint/tfjs.js';
import { PytorchFile } from '../src/checkpoint/pytorch/reader.js';
import type { Checkpoint } from '../src/checkpoint/types.js';
import { loadDataset } from '../src/data/dataset.js';
import { encodeIdxU8 } from '../src/data/idx.js';
import { encodeNpy } from '../src/data/npy.js';
import { SoupError } from '../src/errors.js';
import { mlpTensors, safetensorsBytes, tempDir, writeSafetensorsFile } from './helpers/files.js';
import { linearSpec } from './helpers/onnx.js';
import { f32Bytes, simpleArchive, stateDictPickle, torchArchive } from './helpers/torch.js';

const RUNS = Number(process.env.SOUP_FUZZ_RUNS ?? 60);
const TIMEOUT_MS = 5_000;
/** More new array-buffer memory than this after one case means something trusted a length field. */
const MAX_GROWTH = 64 * 1024 * 1024;
const dir = await tempDir('soup-fuzz-');
// Decoded image folders are cached; keep the cache out of the user's home.
process.env.XDG_CACHE_HOME = await tempDir('soup-cache-');
const fixtures = new URL('../../fixtures/', import.meta.url).pathname;

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'huge'; at: number; width: 4 | 8 }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  // Length fields set to huge values: at the start (safetensors' header length) or anywhere.
  fc.record({ kind: fc.constant('huge' as const), at: fc.oneof(fc.constant(0), fc.nat()), width: fc.constantFrom(4 as const, 8 as const) }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
);

function mutate(original: Uint8Array, mutations: Mutation[]): Uint8Array {
  let bytes = Uint8Array.from(original);
  for (const m of mutations) {
    if (bytes.length === 0) break;
    const at = m.at % bytes.length;
    switch (m.kind) {
      case 'flip':
        bytes[at]! ^= 1 << m.bit;
        break;
      case 'truncate':
        bytes = bytes.subarray(0, at);
        break;
      case 'huge':
        for (let i = 0; i < m.width && at + i < bytes.length; i++) bytes[at + i] = i === m.width - 1 ? 0x7f : 0xff;
        break;
      case 'overwrite':
        bytes.set(m.bytes.subarray(0, bytes.length - at), at);
        break;
    }
  }
  return bytes;
}

/** Replaces or deletes one value somewhere inside a JSON document. */
const jsonEdit = fc.record({ pick: fc.nat(), value: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }) });
function editJson(document: unknown, edit: { pick: number; value: unknown }): unknown {
  const copy = structuredClone(document) as Record<string, unknown>;
  const slots: [Record<string, unknown> | unknown[], string | number][] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node))
      node.forEach((child, i) => {
        slots.push([node, i]);
        walk(child);
      });
    else if (node !== null && typeof node === 'object')
      for (const [key, child] of Object.entries(node)) {
        slots.push([node as Record<string, unknown>, key]);
        walk(child);
      }
  };
  walk(copy);
  const [parent, key] = slots[edit.pick % slots.length]!;
  if (edit.value === undefined && !Array.isArray(parent)) delete (parent as Record<string, unknown>)[key as string];
  else (parent as Record<string | number, unknown>)[key] = edit.value ?? null;
  return copy;
}

/** Runs a parser on a mutated input: it must finish in time with a value or a SoupError, without a large allocation. */
async function survives(run: () => Promise<unknown>): Promise<void> {
  const before = process.memoryUsage().arrayBuffers;
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  try {
    await Promise.race([run(), hang]);
  } catch (error) {
    if (!(error instanceof SoupError)) throw error;
  } finally {
    clearTimeout(timer);
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  assert.ok(grown < MAX_GROWTH, `allocated ${grown} bytes for a small file`);
}

/** A checkpoint that opened must also read every tensor, or fail with a typed error. */
async function readEverything(checkpoint: Checkpoint): Promise<void> {
  try {
    for (const tensor of checkpoint.tensors()) {
      if (isFloatDType(tensor.dtype)) await checkpoint.readFloats(tensor.name);
      else await checkpoint.readBytes(tensor.name);
    }
  } finally {
    await checkpoint.close();
  }
}

const options = { numRuns: RUNS, endOnFailure: true };

describe('fuzzing', { timeout: 600_000 }, () => {
  it('safetensors: mutated headers and bodies end in a typed error or a correct read', async () => {
    const tensors = mlpTensors(1);
    tensors.step = { dtype: 'I64', shape: [1], bytes: new Uint8Array(8) };
    const valid = safetensorsBytes(tensors, { format: 'pt' });
    const file = path.join(dir, 'fuzz.safetensors');
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        await writeFile(file, mutate(valid, mutations));
        await survives(async () => readEverything(await SafetensorsFile.open(file)));
      }),
      options,
    );
  });

  it('safetensors: shuffled and edited header entries end in a typed error or a correct read', async () => {
    const valid = safetensorsBytes(mlpTensors(2));
    const headerLength = Number(Buffer.from(valid).readBigUInt64LE(0));
    const header = JSON.parse(Buffer.from(valid.subarray(8, 8 + headerLength)).toString()) as Record<string, { data_offsets: number[] }>;
    const body = valid.subarray(8 + headerLength);
    const file = path.join(dir, 'shuffled.safetensors');
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { minLength: 4, maxLength: 4 }), jsonEdit, fc.boolean(), async (order, edit, doEdit) => {
        const names = Object.keys(header);
        const offsets = names.map((name) => header[name]!.data_offsets);
        const shuffled = Object.fromEntries(names.map((name, i) => [name, { ...header[name], data_offsets: offsets[order[i]! % offsets.length] }]));
        const json = JSON.stringify(doEdit ? editJson(shuffled, edit) : shuffled);
        const length = Buffer.alloc(8);
        length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
        await writeFile(file, Buffer.concat([length, Buffer.from(json), body]));
        await survives(async () => readEverything(await SafetensorsFile.open(file)));
      }),
      options,
    );
  });

  it('TF.js: mutated model.json and shards end in a typed error or a correct read', async () => {
    const source = path.join(fixtures, 'ingredients', 'lr1e-4-s1');
    const modelJson = await readFile(path.join(source, 'model.json'));
    const shard = await readFile(path.join(source, 'group1-shard1of1.bin'));
    const folder = path.join(dir, 'tfjs');
    await mkdir(folder, { recursive: true });
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('model.json bytes', 'model.json values', 'shard bytes'),
        fc.array(mutation, { minLength: 1, maxLength: 3 }),
        jsonEdit,
        async (target, mutations, edit) => {
          const json =
            target === 'model.json bytes'
              ? mutate(modelJson, mutations)
              : target === 'model.json values'
                ? Buffer.from(JSON.stringify(editJson(JSON.parse(modelJson.toString()), edit)))
                : modelJson;
          await writeFile(path.join(folder, 'model.json'), json);
          await writeFile(path.join(folder, 'group1-shard1of1.bin'), target === 'shard bytes' ? mutate(shard, mutations) : shard);
          await survives(async () => readEverything(await TfjsCheckpoint.open(folder)));
        },
      ),
      options,
    );
  });

  it('ONNX: mutated models end in a typed error or a correct read', async () => {
    const spec = linearSpec(1, { form: 'typed' });
    spec.initializers.push(
      { name: 'raw', dtype: 'F32', dims: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
      { name: 'half', dtype: 'F16', dims: [2], data: new Uint8Array(4), form: 'typed' },
      { name: 'shape', dtype: 'I64', dims: [2], data: new Uint8Array(new BigInt64Array([-1n, 6n]).buffer), form: 'typed' },
    );
    const valid = encodeModel(spec);
    const file = path.join(dir, 'fuzz.onnx');
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        await writeFile(file, mutate(valid, mutations));
        await survives(async () => readEverything(await OnnxCheckpoint.open(file)));
      }),
      options,
    );
  });

  it('sharded index: mutated model.safetensors.index.json ends in a typed error or a correct read', async () => {
    const folder = path.join(dir, 'sharded');
    const t = mlpTensors(3);
    await writeSafetensorsFile(path.join(folder, shardFileName(0, 2)), { 'fc1.weight': t['fc1.weight']!, 'fc1.bias': t['fc1.bias']! });
    await writeSafetensorsFile(path.join(folder, shardFileName(1, 2)), { 'fc2.weight': t['fc2.weight']!, 'fc2.bias': t['fc2.bias']! });
    const index = {
      metadata: { total_size: 104 },
      weight_map: { 'fc1.weight': shardFileName(0, 2), 'fc1.bias': shardFileName(0, 2), 'fc2.weight': shardFileName(1, 2), 'fc2.bias': shardFileName(1, 2) },
    };
    const indexBytes = Buffer.from(JSON.stringify(index));
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 3 }), jsonEdit, async (bytewise, mutations, edit) => {
        const text = bytewise ? mutate(indexBytes, mutations) : Buffer.from(JSON.stringify(editJson(index, edit)));
        await writeFile(path.join(folder, 'model.safetensors.index.json'), text);
        await survives(async () => readEverything(await ShardedSafetensors.open(folder)));
      }),
      options,
    );
  });

  it('PyTorch zip: mutated torch.save archives end in a typed error or a correct read', async () => {
    const archives = [
      await readFile(path.join(fixtures, 'torch', 'views.pt')),
      await readFile(path.join(fixtures, 'torch', 'dtypes.pt')),
      await readFile(path.join(fixtures, 'torch', 'legacy.pt')),
      simpleArchive({ zip64: true }),
    ];
    const file = path.join(dir, 'fuzz.pt');
    await fc.assert(
      fc.asyncProperty(fc.nat(archives.length - 1), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (pick, mutations) => {
        await writeFile(file, mutate(archives[pick]!, mutations));
        await survives(async () => readEverything(await PytorchFile.open(file)));
      }),
      options,
    );
  });

  it('PyTorch pickle: mutated and random data.pkl bytes end in a typed error or a correct read', async () => {
    const specs = [
      { name: 'w', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] },
      { name: 'tied', key: '0', numel: 6, shape: [3, 2], stride: [1, 3] },
      { name: 'b', key: '1', numel: 4, offset: 1, shape: [2], stride: [2] },
    ];
    const pickle = stateDictPickle(specs);
    const storages = { '0': f32Bytes([1, 2, 3, 4, 5, 6]), '1': f32Bytes([7, 8, 9, 10]) };
    const file = path.join(dir, 'fuzz-pickle.pt');
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.array(mutation, { minLength: 1, maxLength: 4 }).map((mutations) => mutate(pickle, mutations)),
          fc.uint8Array({ maxLength: 200 }).map((random) => Uint8Array.from([0x80, 2, ...random, 0x2e])),
        ),
        async (bytes) => {
          await writeFile(file, torchArchive(specs, storages, { pickle: bytes }));
          await survives(async () => readEverything(await PytorchFile.open(file)));
        },
      ),
      options,
    );
  });

  it('npz: mutated archives end in a typed error or a correct read', async () => {
    const x = Uint8Array.from({ length: 6 * 16 }, (_, i) => i % 251);
    const valid = zipSync({ 'x.npy': encodeNpy(x, [6, 4, 4]), 'y.npy': encodeNpy(BigInt64Array.from([0n, 1n, 2n, 0n, 1n, 2n]), [6]) }, { level: 6 });
    const stored = zipSync({ 'x.npy': encodeNpy(x, [6, 16]), 'y.npy': encodeNpy(Int32Array.from([0, 1, 2, 0, 1, 2]), [6]) }, { level: 0 });
    const file = path.join(dir, 'fuzz.npz');
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 4 }), async (compressed, mutations) => {
        await writeFile(file, mutate(compressed ? valid : stored, mutations));
        await survives(() => loadDataset(file));
        // The same file read from disk batch by batch, as a large .npz is.
        await survives(async () => {
          const dataset = await loadDataset(file, {}, { inMemoryBytes: 0 });
          await dataset.read(0, dataset.n);
        });
      }),
      options,
    );
  });

  it('IDX: mutated images and labels files end in a typed error or a correct read', async () => {
    const folder = path.join(dir, 'idx');
    await mkdir(folder, { recursive: true });
    const images = encodeIdxU8(
      Uint8Array.from({ length: 5 * 9 }, (_, i) => i),
      [5, 3, 3],
    );
    const labels = encodeIdxU8(Uint8Array.from([0, 1, 2, 1, 0]), [5]);
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), fc.array(mutation, { minLength: 1, maxLength: 3 }), async (gz, mutateImages, mutations) => {
        await rm(folder, { recursive: true, force: true });
        await mkdir(folder);
        const [img, lab] = mutateImages ? [mutate(images, mutations), labels] : [images, mutate(labels, mutations)];
        const suffix = gz ? '.gz' : '';
        await writeFile(path.join(folder, `images-idx3-ubyte${suffix}`), gz ? gzipSync(img) : img);
        await writeFile(path.join(folder, `labels-idx1-ubyte${suffix}`), gz ? mutate(gzipSync(lab), mutations.slice(0, 1)) : lab);
        await survives(() => loadDataset(folder));
      }),
      options,
    );
  });

  it('CSV: mutated text ends in a typed error or a correct read', async () => {
    const valid = Buffer.from('a,label,b\n0.5,1,2\n-1,0,3.25\n"4",2,5e-3\n');
    const file = path.join(dir, 'fuzz.csv');
    await fc.assert(
      fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 4 }), async (mutations) => {
        await writeFile(file, mutate(valid, mutations));
        await survives(() => loadDataset(file));
      }),
      options,
    );
  });
});

describe('hostile size fields', () => {
  it('refuses an .npz entry that claims more bytes than deflate can produce, before allocating them', async () => {
    const valid = zipSync({ 'x.npy': encodeNpy(new Uint8Array(4), [1, 4]), 'y.npy': encodeNpy(Int32Array.from([0]), [1]) }, { level: 6 });
    const bytes = Buffer.from(valid);
    // Set the uncompressed size of every entry (local headers and central directory) to 2 GB.
    for (let at = bytes.indexOf('PK\x03\x04'); at >= 0; at = bytes.indexOf('PK\x03\x04', at + 4)) bytes.writeUInt32LE(0x7fffffff, at + 22);
    for (let at = bytes.indexOf('PK\x01\x02'); at >= 0; at = bytes.indexOf('PK\x01\x02', at + 4)) bytes.writeUInt32LE(0x7fffffff, at + 24);
    const file = path.join(dir, 'bomb.npz');
    await writeFile(file, bytes);
    await assert.rejects(loadDataset(file), /bomb\.npz:x\.npy: claims 2147483647 bytes from \d+ compressed bytes, more than the data can hold/);
  });

  it('refuses a PNG that claims a gigapixel before decoding it', async () => {
    const folder = path.join(dir, 'giant', 'class');
    await mkdir(folder, { recursive: true });
    const png = Buffer.alloc(64);
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png);
    png.write('IHDR', 12);
    png.writeUInt32BE(40000, 16);
    png.writeUInt32BE(40000, 20);
    await writeFile(path.join(folder, 'huge.png'), png);
    await assert.rejects(loadDataset(path.dirname(folder)), /huge\.png: image claims 40000x40000 pixels, more than the 64 megapixels allowed/);
  });
});
