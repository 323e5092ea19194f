import { mkdtemp, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';

/** A fresh temporary folder, removed when the test file finishes. */
export async function tempDir(prefix = 'soup-test-'): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), prefix));
  after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export interface RawTensor {
  dtype: string;
  shape: number[];
  /** The stored bytes; for F32 tensors, `values` is simpler. */
  bytes?: Uint8Array;
  values?: number[];
}

/**
 * Builds a safetensors file by hand, straight from the format's description (8-byte little-endian
 * header length, JSON header, data), independently of the code under test.
 */
export function safetensorsBytes(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    const bytes = tensor.bytes ?? new Uint8Array(new Float32Array(tensor.values ?? []).buffer);
    header[name] = { dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes.length] };
    chunks.push(bytes);
    offset += bytes.length;
  }
  return rawSafetensors(JSON.stringify(header), chunks);
}

/** A safetensors file from a literal header string and data, for malformed-file tests. */
export function rawSafetensors(headerJson: string, chunks: Uint8Array[] = [], headerLength?: bigint): Uint8Array {
  const json = Buffer.from(headerJson, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(headerLength ?? BigInt(json.length));
  return Buffer.concat([length, json, ...chunks]);
}

export async function writeSafetensorsFile(file: string, tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, safetensorsBytes(tensors, metadata));
  return file;
}

export const f32 = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

/** A small two-layer network's tensors with values derived from `seed`, as safetensors input. */
export function mlpTensors(seed: number): Record<string, RawTensor> {
  const values = (count: number, offset: number): number[] => Array.from({ length: count }, (_, i) => seed * 10 + offset + i / 8);
  return {
    'fc1.weight': { dtype: 'F32', shape: [4, 3], values: values(12, 0) },
    'fc1.bias': { dtype: 'F32', shape: [4], values: values(4, 1) },
    'fc2.weight': { dtype: 'F32', shape: [2, 4], values: values(8, 2) },
    'fc2.bias': { dtype: 'F32', shape: [2], values: values(2, 3) },
  };
}

export async function listFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** All chunks of a tensor producer, joined. */
export async function collect(chunks: AsyncIterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of chunks) parts.push(chunk.slice());
  return new Uint8Array(Buffer.concat(parts));
}

/** A producer's output for one tensor, as the writer would see it. */
export async function* once(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  yield bytes;
}

/** Opened ingredients named a, b, c... in `folder`, each holding one float32 weight `w` with the given value. */
export async function oneWeightIngredients(folder: string, values: readonly number[]): Promise<SafetensorsFile[]> {
  const list = [];
  for (const [i, value] of values.entries()) {
    const file = await writeSafetensorsFile(path.join(folder, `${String.fromCharCode(97 + i)}.safetensors`), {
      w: { dtype: 'F32', shape: [1], values: [value] },
    });
    list.push(await SafetensorsFile.open(file));
  }
  return list;
}
