import { writeSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { InputError, OutputError, describeFsError } from '../errors.js';
import { yieldIfDue } from '../event-loop.js';
import { decodeFloats, dtypeSize, isDType, numel, requireFloat } from './dtype.js';
import { RangeReader, decodeUtf8, fileSize, parseJson } from './files.js';
import type { Checkpoint, ChunkScratch, OutputTensor, TensorInfo } from './types.js';

/** The reference implementation's limit: a larger header is a hostile or broken file. */
export const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

export interface SafetensorsHeader {
  /** Tensors in data order. */
  tensors: (TensorInfo & { begin: number; end: number })[];
  metadata: Record<string, string>;
  /** Where tensor data starts: 8 + header length. */
  dataStart: number;
}

const metadataSchema = z.record(z.string(), z.string());

/**
 * Reads and validates a safetensors header with the reference reader's rules: bounded length inside
 * the file, strict UTF-8 JSON, known dtypes, sane shapes, offsets that tile the data exactly.
 */
export async function readSafetensorsHeader(file: string, reader: RangeReader): Promise<SafetensorsHeader> {
  const size = reader.size;
  if (size < 8) throw new InputError(file, `file is ${size} bytes, too short for a safetensors header`);
  const lengthBytes = await reader.read(0, 8);
  const headerLength = new DataView(lengthBytes.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new InputError(file, `header length ${headerLength} is larger than the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  const length = Number(headerLength);
  if (8 + length > size) {
    throw new InputError(file, `header length ${length} runs past the end of the ${size}-byte file (truncated or not a safetensors file)`);
  }
  const text = decodeUtf8(await reader.read(8, length), file, 'header');
  const json = parseJson(text, file, 'header');
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new InputError(file, 'header is not a JSON object');
  }
  const duplicate = findDuplicateKey(text);
  if (duplicate !== undefined) throw new InputError(file, `duplicate tensor name in header`, { tensor: duplicate });

  let metadata: Record<string, string> = {};
  const tensors: SafetensorsHeader['tensors'] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === METADATA_KEY) {
      const parsed = metadataSchema.safeParse(value);
      if (!parsed.success) throw new InputError(file, '__metadata__ must map strings to strings');
      metadata = parsed.data;
      continue;
    }
    tensors.push(parseEntry(file, name, value));
  }

  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = size - 8 - length;
  let expected = 0;
  for (const tensor of tensors) {
    if (tensor.begin !== expected) {
      const problem = tensor.begin < expected ? 'overlaps the previous tensor' : `leaves a gap: data should start at ${expected}`;
      throw new InputError(file, `data_offsets [${tensor.begin}, ${tensor.end}] ${problem}`, { tensor: tensor.name });
    }
    expected = tensor.end;
  }
  if (expected !== dataLength) {
    const problem = expected > dataLength ? 'the file is truncated' : 'the file has trailing bytes';
    throw new InputError(file, `tensor data ends at byte ${expected} but the file holds ${dataLength} data bytes: ${problem}`);
  }
  return { tensors, metadata, dataStart: 8 + length };
}

/**
 * Checked by hand, not with a zod schema: a large model's header holds hundreds of entries per
 * ingredient, and zod took about 25 µs for each (70 µs before V8 warms up), more than the rest of
 * opening a checkpoint.
 */
function parseEntry(file: string, name: string, value: unknown): SafetensorsHeader['tensors'][number] {
  const malformed = (where: string, problem: string): InputError => new InputError(file, `malformed header entry: ${where}: ${problem}`, { tensor: name });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw malformed('entry', 'expected an object');
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw malformed('dtype', 'expected a string');
  if (!Array.isArray(shape)) throw malformed('shape', 'expected an array');
  shape.forEach((size, i) => {
    if (!isCount(size)) throw malformed(`shape.${i}`, 'expected a non-negative integer');
  });
  if (!Array.isArray(offsets) || offsets.length !== 2) throw malformed('data_offsets', 'expected [begin, end]');
  offsets.forEach((offset, i) => {
    if (!isCount(offset)) throw malformed(`data_offsets.${i}`, 'expected a non-negative integer');
  });
  const [begin, end] = offsets as [number, number];
  if (!isDType(dtype)) throw new InputError(file, `unknown or unsupported dtype "${dtype}"`, { tensor: name });
  const count = numel(shape);
  if (!Number.isSafeInteger(count * dtypeSize(dtype))) throw new InputError(file, `shape [${shape.join(', ')}] is too large`, { tensor: name });
  if (end < begin) throw new InputError(file, `data_offsets [${begin}, ${end}] end before they begin`, { tensor: name });
  const bytes = count * dtypeSize(dtype);
  if (end - begin !== bytes) {
    throw new InputError(file, `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape [${shape.join(', ')}] of ${dtype} needs ${bytes}`, {
      tensor: name,
    });
  }
  return { name, shape: shape as number[], dtype, storedBytes: bytes, begin, end };
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

/**
 * JSON.parse keeps the last of two equal keys silently; the format forbids duplicates, so scan the
 * top-level object's keys ourselves.
 */
export function findDuplicateKey(json: string): string | undefined {
  const seen = new Set<string>();
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < json.length; i++) {
    const ch = json[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < json.length && json[j] !== '"') j += json[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) {
        const key = JSON.parse(json.slice(i, j + 1)) as string;
        if (seen.has(key)) return key;
        seen.add(key);
        expectKey = false;
      }
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      if (depth === 1) expectKey = true;
    } else if (ch === '}' || ch === ']') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return undefined;
}

/** One .safetensors file. Also used for each shard of a sharded checkpoint. */
export class SafetensorsFile implements Checkpoint {
  readonly format = 'safetensors' as const;
  readonly files: readonly string[];
  private readonly byName: Map<string, SafetensorsHeader['tensors'][number]>;

  private constructor(
    readonly name: string,
    readonly path: string,
    private readonly header: SafetensorsHeader,
    private readonly reader: RangeReader,
  ) {
    this.files = [path];
    this.byName = new Map(header.tensors.map((tensor) => [tensor.name, tensor]));
  }

  static async open(file: string, name = path.basename(file, '.safetensors')): Promise<SafetensorsFile> {
    const reader = new RangeReader([{ path: file, size: await fileSize(file) }]);
    try {
      const header = await readSafetensorsHeader(file, reader);
      // Keep no descriptor between the header and the first weight read: a soup may open hundreds of files.
      await reader.close();
      return new SafetensorsFile(name, file, header, reader);
    } catch (error) {
      await reader.close();
      throw error;
    }
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.header.metadata;
  }

  tensors(): readonly TensorInfo[] {
    return this.header.tensors;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const tensor = this.lookup(name);
    if (tensor.storedBytes === 0) return new Uint8Array(0);
    return this.reader.read(this.header.dataStart + tensor.begin, tensor.storedBytes);
  }

  async readFloats(name: string): Promise<Float32Array | Float64Array> {
    return decodeFloats(await this.readBytes(name), requireFloat(this.path, this.lookup(name)));
  }

  async readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    const dtype = requireFloat(this.path, this.lookup(name));
    const bytes = await this.readStoredRange(name, start, count, scratch?.bytes ?? new Uint8Array(count * dtypeSize(dtype)));
    return decodeFloats(bytes, dtype, scratch?.floats);
  }

  async readStoredRange(name: string, start: number, count: number, into: Uint8Array): Promise<Uint8Array> {
    const tensor = this.lookup(name);
    const size = dtypeSize(tensor.dtype);
    const bytes = into.subarray(0, count * size);
    if (count > 0) await this.reader.readInto(this.header.dataStart + tensor.begin + start * size, bytes);
    return bytes;
  }

  async close(): Promise<void> {
    await this.reader.close();
  }

  private lookup(name: string): SafetensorsHeader['tensors'][number] {
    const tensor = this.byName.get(name);
    if (tensor === undefined) throw new InputError(this.path, 'no such tensor', { tensor: name });
    return tensor;
  }
}

/** The header bytes for these tensors, laid out back to back in the given order, padded to 8 bytes. */
export function encodeSafetensorsHeader(tensors: readonly OutputTensor[], metadata: Record<string, string>): Uint8Array {
  const entries: string[] = [];
  if (Object.keys(metadata).length > 0) entries.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const tensor of tensors) {
    const bytes = storedBytes(tensor);
    // Built by hand: JSON.stringify would move integer-like tensor names ("0", "1") to the front.
    entries.push(`${JSON.stringify(tensor.name)}:${JSON.stringify({ dtype: tensor.dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] })}`);
    offset += bytes;
  }
  const json = new TextEncoder().encode(`{${entries.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20, 8);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/**
 * Yields a tensor's bytes in its output dtype, in one or more chunks; the writer writes each chunk
 * before asking for the next, so a producer may reuse one buffer for all of them. A producer that
 * sets `alternatesBuffers` keeps each chunk valid until the chunk after next is requested (two
 * buffers in turn, across tensors too): the safetensors writer then writes one chunk while the next
 * is computed.
 */
export type TensorProducer = ((tensor: OutputTensor, index: number) => AsyncIterable<Uint8Array>) & { readonly alternatesBuffers?: boolean };

/**
 * Writes one safetensors file to an open handle, pulling each tensor's bytes from `produce` in order,
 * so only a chunk of one tensor is in memory at a time. Returns the header it wrote.
 */
export async function writeSafetensors(
  handle: FileHandle,
  file: string,
  tensors: readonly OutputTensor[],
  metadata: Record<string, string>,
  produce: TensorProducer,
): Promise<Uint8Array> {
  const header = encodeSafetensorsHeader(tensors, metadata);
  await writeAll(handle, file, header);
  // Writing fresh pages costs about as much as computing them: with buffers in turn, one chunk is
  // written on libuv's thread while the next is computed (measured: a third less wall time).
  let pending: Promise<void> | undefined;
  try {
    for (const [index, tensor] of tensors.entries()) {
      let written = 0;
      for await (const chunk of produce(tensor, index)) {
        if (produce.alternatesBuffers === true) {
          await pending;
          pending = writeAllInBackground(handle, file, chunk);
          pending.catch(() => {});
        } else {
          await writeAll(handle, file, chunk);
        }
        written += chunk.byteLength;
      }
      const expected = storedBytes(tensor);
      if (written !== expected) throw new Error(`internal: tensor ${tensor.name} produced ${written} bytes, expected ${expected}`);
    }
    await pending;
  } finally {
    // Never leave a write in flight on a handle the caller is about to close.
    await pending?.catch(() => {});
  }
  return header;
}

/**
 * Writes all of `bytes`, at `position` or else at the file's current position. Synchronously, as
 * RangeReader reads: a write to the page cache costs less than waking a thread-pool thread for it
 * (measured on a soup of 8 × 69 MB: 15-30 ms faster in all). The event loop still gets a turn at
 * least every 10 ms (yieldIfDue), so signals are handled.
 */
export async function writeAll(handle: FileHandle, file: string, bytes: Uint8Array, position?: number): Promise<void> {
  await yieldIfDue();
  let written = 0;
  while (written < bytes.byteLength) {
    const at = position === undefined ? null : position + written;
    let bytesWritten: number;
    try {
      bytesWritten = writeSync(handle.fd, bytes, written, bytes.byteLength - written, at);
    } catch (error) {
      throw new OutputError(file, `cannot write: ${describeFsError(error)}`, { cause: error });
    }
    written += bytesWritten;
  }
}

/** writeAll on libuv's thread pool, at the file's current position. */
async function writeAllInBackground(handle: FileHandle, file: string, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.byteLength) {
    try {
      written += (await handle.write(bytes, written, bytes.byteLength - written, null)).bytesWritten;
    } catch (error) {
      throw new OutputError(file, `cannot write: ${describeFsError(error)}`, { cause: error });
    }
  }
}

export function storedBytes(tensor: OutputTensor): number {
  return numel(tensor.shape) * dtypeSize(tensor.dtype);
}
