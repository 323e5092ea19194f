import path from 'node:path';
import { InputError } from '../../errors.js';
import { decodeFloats, dtypeSize, requireFloat, type DType } from '../dtype.js';
import { RangeReader, decodeUtf8, fileSize } from '../files.js';
import type { Checkpoint, ChunkScratch, TensorInfo } from '../types.js';
import { LIMITS, PickleError, PySet, PyTuple, StorageRef, TensorRef, UnsupportedTensor, describe, unpickleAt, type PyDict, type PyValue } from './unpickle.js';
import { ZipArchive, checkStored, type ZipRecord } from './zip.js';

/** Where training scripts put the weights beside the epoch and optimizer state, tried in this order. */
export const WRAPPER_KEYS = ['state_dict', 'model', 'model_state_dict', 'module'] as const;
/** The record a soup written by soup carries its recipe in (a JSON string); torch.load ignores it. */
export const RECIPE_RECORD = 'soup.recipe';
const RECIPE_KEY = 'soup.recipe';
const MAX_SMALL_RECORD = 16 * 1024 * 1024;
/** A non-contiguous chunk whose storage span is at most this many times its own size is read directly. */
const SPAN_FACTOR = 4;
/**
 * Bytes that stride-0 (broadcast) views of one file may expand to, all views together: a few
 * hundred bytes of pickle could otherwise describe gigabytes of soup.
 */
const MAX_BROADCAST_BYTES = 64 * 1024 * 1024;
/** Elements of a strided view gathered at a time (their storage indices take 8 bytes each). */
const GATHER_BLOCK = 65536;
/** Side of the square tiles a matrix view is copied in: two 64 x 64 tiles of doubles fit in L1. */
const TILE = 64;

const LEGACY_MAGIC = Uint8Array.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
const LFS_POINTER = 'version https://git-lfs.github.com/spec/';

export interface PytorchOpenOptions {
  /** The top-level entry holding the state dict, instead of the usual wrapper keys. */
  key?: string | undefined;
}

/** Where a storage's bytes lie in the file. */
interface StorageData {
  start: number;
  size: number;
}

/** What the two containers (zip archive, legacy stream) give the tensor code: the pickle's root and the storages. */
interface Container {
  root: PyValue;
  /** A storage's name in messages, e.g. archive/data/0. */
  label(key: string): string;
  locate(key: string): Promise<StorageData | undefined>;
  bigEndian: boolean;
  metadata: Record<string, string>;
}

interface PytorchTensor extends TensorInfo {
  ref: TensorRef;
  /** Byte offset of the storage's first element in the file. */
  start: number;
  elementSize: number;
  contiguous: boolean;
  /** Lowest and highest storage element the view touches. */
  first: number;
  last: number;
}

/**
 * A torch.save zip archive (PyTorch >= 1.6): data.pkl goes through our restricted unpickler, which
 * yields tensor descriptors; each tensor's bytes are read on demand from its storage record, by
 * offset, gathering strided (transposed, sliced) views element by element.
 */
export class PytorchFile implements Checkpoint {
  readonly format = 'pytorch' as const;
  readonly files: readonly string[];
  private readonly byName: Map<string, PytorchTensor>;
  /** The storage extent of the non-contiguous tensor being read, so its chunks do not re-read it. */
  private cached: { name: string; bytes: Uint8Array; rowMajor: boolean } | undefined;
  private indices = new Float64Array(0);

  private constructor(
    readonly name: string,
    readonly path: string,
    private readonly reader: RangeReader,
    private readonly ordered: PytorchTensor[],
    readonly metadata: Readonly<Record<string, string>>,
    /** How the weights were found: the wrapper entry used and what was ignored. */
    readonly notes: readonly string[],
    private readonly bigEndian: boolean,
  ) {
    this.files = [path];
    this.byName = new Map(ordered.map((tensor) => [tensor.name, tensor]));
  }

  static async open(file: string, name = path.basename(file, path.extname(file)), options: PytorchOpenOptions = {}): Promise<PytorchFile> {
    const reader = new RangeReader([{ path: file, size: await fileSize(file) }]);
    try {
      const legacy = await detectFormat(file, reader);
      const container = legacy ? await openLegacy(file, reader) : await openZip(file, reader);
      const selected = selectStateDict(file, container.root, options.key);
      const { tensors, ignored } = await describeTensors(file, container, selected.dict);
      const notes = ignored.length > 0 ? [...selected.notes, `ignored entries that are not tensors: ${ignored.join(', ')}`] : selected.notes;
      if (legacy) notes.push('legacy torch.save format (PyTorch < 1.6)');
      await reader.close();
      return new PytorchFile(name, file, reader, tensors, container.metadata, notes, container.bigEndian);
    } catch (error) {
      await reader.close();
      throw error;
    }
  }

  tensors(): readonly TensorInfo[] {
    return this.ordered;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const tensor = this.lookup(name);
    const count = tensor.storedBytes / tensor.elementSize;
    const out = new Uint8Array(tensor.storedBytes);
    await this.gather(tensor, 0, count, out);
    return out;
  }

  async readFloats(name: string): Promise<Float32Array | Float64Array> {
    return decodeFloats(await this.readBytes(name), requireFloat(this.path, this.lookup(name)));
  }

  async readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    const tensor = this.lookup(name);
    const dtype = requireFloat(this.path, tensor);
    const bytes = scratch === undefined ? new Uint8Array(count * tensor.elementSize) : scratch.bytes.subarray(0, count * tensor.elementSize);
    await this.gather(tensor, start, count, bytes);
    return decodeFloats(bytes, dtype, scratch?.floats);
  }

  async close(): Promise<void> {
    this.cached = undefined;
    await this.reader.close();
  }

  /** Elements [start, start + count) of the tensor in row-major order, as little-endian bytes. */
  private async gather(tensor: PytorchTensor, start: number, count: number, out: Uint8Array): Promise<void> {
    if (count === 0) return;
    const size = tensor.elementSize;
    if (tensor.contiguous) {
      await this.reader.readInto(tensor.start + (tensor.ref.offset + start) * size, out);
    } else if (isMatrixView(tensor)) {
      const rows = await this.materialize(tensor);
      out.set(rows.subarray(start * size, (start + count) * size));
    } else {
      for (let done = 0; done < count; done += GATHER_BLOCK) {
        const n = Math.min(GATHER_BLOCK, count - done);
        await this.gatherBlock(tensor, start + done, n, out.subarray(done * size, (done + n) * size));
      }
    }
    if (this.bigEndian && size > 1) swapBytes(out, size);
  }

  /**
   * A transposed or sliced matrix in row-major order, built once for all its chunks by copying
   * tile by tile, so that reads of the source stay in cache (element by element, a transposed read
   * misses the cache on every element).
   */
  private async materialize(tensor: PytorchTensor): Promise<Uint8Array> {
    if (this.cached?.name === tensor.name && this.cached.rowMajor) return this.cached.bytes;
    this.cached = undefined;
    const size = tensor.elementSize;
    const source = await this.reader.read(tensor.start + tensor.first * size, (tensor.last - tensor.first + 1) * size);
    const out = new Uint8Array(tensor.storedBytes);
    const [rows, cols] = tensor.shape as [number, number];
    const unit = size % 4 === 0 ? 4 : size % 2 === 0 ? 2 : 1;
    const per = size / unit;
    copyTiles(
      wordView(source, unit),
      wordView(out, unit),
      rows,
      cols,
      tensor.ref.stride[0]! * per,
      tensor.ref.stride[1]! * per,
      (tensor.ref.offset - tensor.first) * per,
      per,
    );
    this.cached = { name: tensor.name, bytes: out, rowMajor: true };
    return out;
  }

  /** A block of a strided view: its storage indices first, then the elements they point at. */
  private async gatherBlock(tensor: PytorchTensor, start: number, count: number, out: Uint8Array): Promise<void> {
    const size = tensor.elementSize;
    if (this.indices.length < count) this.indices = new Float64Array(GATHER_BLOCK);
    const indices = this.indices;
    const { lowest, highest } = storageIndices(tensor.ref.shape, tensor.ref.stride, tensor.ref.offset, start, count, indices);
    let source: Uint8Array;
    let origin: number;
    if (highest - lowest + 1 <= SPAN_FACTOR * count) {
      source = await this.reader.read(tensor.start + lowest * size, (highest - lowest + 1) * size);
      origin = lowest;
    } else {
      // A transposed block touches the whole storage: read the view's extent once for all its chunks.
      if (this.cached?.name !== tensor.name || this.cached.rowMajor) {
        this.cached = undefined;
        this.cached = {
          name: tensor.name,
          bytes: await this.reader.read(tensor.start + tensor.first * size, (tensor.last - tensor.first + 1) * size),
          rowMajor: false,
        };
      }
      source = this.cached.bytes;
      origin = tensor.first;
    }
    copyElements(source, origin, indices, count, size, out);
  }

  private lookup(name: string): PytorchTensor {
    const tensor = this.byName.get(name);
    if (tensor === undefined) throw new InputError(this.path, 'no such tensor', { tensor: name });
    return tensor;
  }
}

/** Bytes seen as 1-, 2- or 4-byte words, to copy elements a word at a time. */
function wordView(bytes: Uint8Array, unit: number): Uint8Array | Uint16Array | Uint32Array {
  if (unit === 4) return new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 2);
  if (unit === 2) return new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
  return bytes;
}

/** to[r][c] = from[origin + r * rowStride + c * colStride], in square tiles; each element is `per` words. */
function copyTiles(
  from: ArrayLike<number>,
  to: { [index: number]: number },
  rows: number,
  cols: number,
  rowStride: number,
  colStride: number,
  origin: number,
  per: number,
): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        let at = origin + r * rowStride + c0 * colStride;
        let into = (r * cols + c0) * per;
        if (per === 1) {
          for (let c = c0; c < c1; c++, at += colStride) to[into++] = from[at]!;
        } else {
          for (let c = c0; c < c1; c++, at += colStride) for (let w = 0; w < per; w++) to[into++] = from[at + w]!;
        }
      }
    }
  }
}

/** A strided 2-D view no larger than the storage span it reads: materialized whole, tile by tile. */
function isMatrixView(tensor: PytorchTensor): boolean {
  return tensor.shape.length === 2 && tensor.storedBytes > 0 && tensor.storedBytes <= (tensor.last - tensor.first + 1) * tensor.elementSize;
}

/** The storage index of each element [start, start + count) of a strided view, and their range. */
function storageIndices(
  shape: readonly number[],
  stride: readonly number[],
  offset: number,
  start: number,
  count: number,
  into: Float64Array,
): { lowest: number; highest: number } {
  const rank = shape.length;
  const coords = new Array<number>(rank).fill(0);
  let rest = start;
  let index = offset;
  for (let d = rank - 1; d >= 0; d--) {
    coords[d] = rest % shape[d]!;
    rest = Math.floor(rest / shape[d]!);
    index += coords[d]! * stride[d]!;
  }
  let lowest = index;
  let highest = index;
  const last = rank - 1;
  const innerSize = rank === 0 ? 1 : shape[last]!;
  const innerStride = rank === 0 ? 0 : stride[last]!;
  for (let i = 0; i < count; i++) {
    into[i] = index;
    if (index < lowest) lowest = index;
    else if (index > highest) highest = index;
    if (rank === 0) continue;
    // The innermost dimension moves on without the general carry loop: most steps are there.
    if (++coords[last]! < innerSize) {
      index += innerStride;
      continue;
    }
    index -= (innerSize - 1) * innerStride;
    coords[last] = 0;
    for (let d = last - 1; d >= 0; d--) {
      if (++coords[d]! < shape[d]!) {
        index += stride[d]!;
        break;
      }
      index -= (shape[d]! - 1) * stride[d]!;
      coords[d] = 0;
    }
  }
  return { lowest, highest };
}

/** Copies element `indices[i] - origin` of `source` to element i of `out`, in words as wide as the data allows. */
function copyElements(source: Uint8Array, origin: number, indices: Float64Array, count: number, size: number, out: Uint8Array): void {
  let unit = size % 4 === 0 ? 4 : size % 2 === 0 ? 2 : 1;
  if (source.byteOffset % unit !== 0 || out.byteOffset % unit !== 0) unit = 1;
  const from = wordView(source, unit);
  const to = wordView(out, unit);
  const per = size / unit;
  if (per === 1) {
    for (let i = 0; i < count; i++) to[i] = from[indices[i]! - origin]!;
    return;
  }
  for (let i = 0; i < count; i++) {
    const at = (indices[i]! - origin) * per;
    for (let w = 0; w < per; w++) to[i * per + w] = from[at + w]!;
  }
}

function swapBytes(bytes: Uint8Array, size: number): void {
  for (let i = 0; i + size <= bytes.length; i += size) {
    for (let a = i, b = i + size - 1; a < b; a++, b--) {
      const t = bytes[a]!;
      bytes[a] = bytes[b]!;
      bytes[b] = t;
    }
  }
}

/**
 * True for the legacy format, false for a zip; files that are neither but are often named .pt or
 * .bin are refused with the way out.
 */
async function detectFormat(file: string, reader: RangeReader): Promise<boolean> {
  const head = await reader.read(0, Math.min(reader.size, 64));
  if (Buffer.from(head).toString('latin1').startsWith(LFS_POINTER)) {
    throw new InputError(file, 'is a Git LFS pointer, not weights: run git lfs pull');
  }
  if (head.length >= LEGACY_MAGIC.length && LEGACY_MAGIC.every((byte, i) => head[i] === byte)) return true;
  if (!(head[0] === 0x50 && head[1] === 0x4b && head[2] === 0x03 && head[3] === 0x04)) {
    throw new InputError(file, 'not a PyTorch checkpoint (neither a torch.save zip archive nor a legacy torch.save file)');
  }
  return false;
}

function unpickleOrThrow(file: string, what: string, bytes: Uint8Array, start = 0): { value: PyValue; end: number } {
  try {
    return unpickleAt(bytes, start);
  } catch (error) {
    if (error instanceof PickleError) throw new InputError(file, `${what}: ${error.message}`, { cause: error });
    throw error;
  }
}

async function openZip(file: string, reader: RangeReader): Promise<Container> {
  const archive = await ZipArchive.open(file, reader);
  const prefix = archivePrefix(file, archive);
  const record = (suffix: string): ZipRecord | undefined => archive.records.get(`${prefix}/${suffix}`);
  if (record('constants.pkl') !== undefined || [...archive.records.keys()].some((entry) => entry.startsWith(`${prefix}/code/`))) {
    throw new InputError(file, 'is a TorchScript archive (torch.jit.save), which holds code; save model.state_dict() instead, with torch.save');
  }
  const pickle = record('data.pkl');
  if (pickle === undefined) throw new InputError(file, `has no ${prefix}/data.pkl record: not a torch.save archive`);
  const bigEndian = await readByteOrder(file, archive, record('byteorder'));
  const { value: root } = unpickleOrThrow(file, 'data.pkl', await archive.readRecord(pickle, LIMITS.pickleBytes));
  const metadata: Record<string, string> = {};
  const recipe = record(RECIPE_RECORD);
  if (recipe !== undefined) metadata[RECIPE_KEY] = decodeUtf8(await archive.readRecord(recipe, MAX_SMALL_RECORD), file, RECIPE_RECORD);
  return {
    root,
    bigEndian,
    metadata,
    label: (key) => `${prefix}/data/${key}`,
    locate: async (key) => {
      const found = record(`data/${key}`);
      if (found === undefined) return undefined;
      checkStored(file, found);
      return { start: await archive.dataStart(found), size: found.size };
    },
  };
}

/**
 * The format of torch.save before PyTorch 1.6: pickles back to back (magic number, protocol
 * version, system info, the object, the storage keys), then each storage as an 8-byte element
 * count and its bytes, in key order. Read with the same unpickler; the storages by offset.
 */
async function openLegacy(file: string, reader: RangeReader): Promise<Container> {
  let window = Math.min(reader.size, 1024 * 1024);
  for (;;) {
    const head = await reader.read(0, window);
    try {
      return await parseLegacy(file, reader, head);
    } catch (error) {
      const truncated = error instanceof InputError && /truncated/.test(error.message);
      if (!truncated || window >= Math.min(reader.size, LIMITS.pickleBytes)) throw error;
      window = Math.min(reader.size, LIMITS.pickleBytes, window * 4);
    }
  }
}

async function parseLegacy(file: string, reader: RangeReader, head: Uint8Array): Promise<Container> {
  let at = 0;
  const next = (what: string): PyValue => {
    const { value, end } = unpickleOrThrow(file, what, head, at);
    at = end;
    return value;
  };
  next('magic number');
  const protocol = next('protocol version');
  if (protocol !== 1001) throw new InputError(file, `legacy torch.save protocol ${describe(protocol)} is not 1001`);
  const info = next('system info');
  const littleEndian = info instanceof Map ? info.get('little_endian') : undefined;
  const root = next('legacy pickle');
  const keys = next('storage keys');
  if (!Array.isArray(keys) || !keys.every((key) => typeof key === 'string')) throw new InputError(file, 'legacy storage keys are not a list of strings');
  const sizes = new Map<string, number>();
  collectStorages(root, sizes);
  const storages = new Map<string, StorageData>();
  let offset = at;
  for (const key of keys as string[]) {
    const elementSize = sizes.get(key);
    if (elementSize === undefined) throw new InputError(file, `legacy storage ${key} is listed but no tensor uses it`);
    if (offset + 8 > reader.size) throw new InputError(file, `legacy storage ${key} starts past the end of the file (truncated?)`);
    const count = new DataView((await reader.read(offset, 8)).buffer).getBigInt64(0, littleEndian !== false);
    const size = Number(count) * elementSize;
    if (count < 0n || !Number.isSafeInteger(size) || offset + 8 + size > reader.size) {
      throw new InputError(file, `legacy storage ${key} claims ${count} elements, more than the file holds (truncated?)`);
    }
    storages.set(key, { start: offset + 8, size });
    offset += 8 + size;
  }
  return { root, bigEndian: littleEndian === false, metadata: {}, label: (key) => `storage ${key}`, locate: async (key) => storages.get(key) };
}

/** Every storage a legacy pickle names, with its element size: the stream's layout depends on it. */
function collectStorages(root: PyValue, sizes: Map<string, number>): void {
  const stack: PyValue[] = [root];
  const seen = new Set<PyValue>();
  while (stack.length > 0) {
    const value = stack.pop()!;
    if (value === null || typeof value !== 'object' || seen.has(value)) continue;
    seen.add(value);
    if (value instanceof TensorRef) sizes.set(value.storage.key, value.storage.type.dtype === undefined ? 1 : dtypeSize(value.storage.type.dtype));
    else if (value instanceof StorageRef) sizes.set(value.key, value.type.dtype === undefined ? 1 : dtypeSize(value.type.dtype));
    // Item by item: a pickled list of a million entries is too many to spread as arguments.
    else if (Array.isArray(value)) for (const item of value) stack.push(item);
    else if (value instanceof Map) for (const [k, v] of value) stack.push(k, v);
    else if (value instanceof PyTuple || value instanceof PySet) for (const item of value.items) stack.push(item);
  }
}

/** torch.save puts every record under one folder, named after the file or "archive". */
function archivePrefix(file: string, archive: ZipArchive): string {
  let prefix: string | undefined;
  for (const name of archive.records.keys()) {
    const slash = name.indexOf('/');
    if (slash <= 0) throw new InputError(file, `record ${name} is not inside the archive's folder: not a torch.save archive`);
    const first = name.slice(0, slash);
    if (prefix !== undefined && first !== prefix) throw new InputError(file, `records lie in two folders (${prefix}/, ${first}/): not a torch.save archive`);
    prefix = first;
  }
  if (prefix === undefined) throw new InputError(file, 'the zip archive is empty: not a torch.save archive');
  return prefix;
}

async function readByteOrder(file: string, archive: ZipArchive, record: ZipRecord | undefined): Promise<boolean> {
  if (record === undefined) return false;
  const text = decodeUtf8(await archive.readRecord(record, 16), file, 'byteorder').trim();
  if (text !== 'little' && text !== 'big') throw new InputError(file, `byteorder record says "${text}", expected "little" or "big"`);
  return text === 'big';
}

function isTensor(value: PyValue): boolean {
  return value instanceof TensorRef || value instanceof UnsupportedTensor;
}

function keyName(key: PyValue): string {
  return typeof key === 'string' ? key : describe(key);
}

function hasTensors(dict: PyDict): boolean {
  for (const value of dict.values()) if (isTensor(value)) return true;
  return false;
}

/**
 * The dict holding the weights: the top level of a state dict, or the entry of a training
 * checkpoint that holds one (`--key` picks it, else the usual wrapper keys are tried).
 */
export function selectStateDict(file: string, root: PyValue, key?: string): { dict: PyDict; notes: string[] } {
  if (!(root instanceof Map)) {
    throw new InputError(file, `holds ${describe(root)}, not a dict of tensors (a state dict)`, { hint: 'save model.state_dict() with torch.save' });
  }
  const entries = (): string => [...root.keys()].map(keyName).join(', ') || 'none';
  const unwrap = (name: string, dict: PyDict): { dict: PyDict; notes: string[] } => {
    const others = [...root.keys()].map(keyName).filter((other) => other !== name);
    return { dict, notes: [`weights from entry "${name}"${others.length > 0 ? `; ignored: ${others.join(', ')}` : ''}`] };
  };
  if (key !== undefined) {
    const value = root.get(key);
    if (value === undefined) throw new InputError(file, `has no entry "${key}" (its entries: ${entries()})`);
    if (!(value instanceof Map) || !hasTensors(value)) throw new InputError(file, `entry "${key}" is ${describe(value)} without tensors, not a state dict`);
    return unwrap(key, value);
  }
  if (hasTensors(root)) return { dict: root, notes: [] };
  for (const candidate of WRAPPER_KEYS) {
    const value = root.get(candidate);
    if (value instanceof Map && hasTensors(value)) return unwrap(candidate, value);
  }
  throw new InputError(file, `holds no tensors at its top level nor under ${WRAPPER_KEYS.join(', ')} (its entries: ${entries()})`, {
    hint: 'pick the entry that holds the weights with --key NAME',
  });
}

async function describeTensors(file: string, container: Container, dict: PyDict): Promise<{ tensors: PytorchTensor[]; ignored: string[] }> {
  const tensors: PytorchTensor[] = [];
  const ignored: string[] = [];
  const tied = new Map<string, string>();
  const broadcast = { bytes: 0 };
  for (const [key, value] of dict) {
    const name = typeof key === 'string' ? key : typeof key === 'number' ? String(key) : undefined;
    if (!isTensor(value)) {
      ignored.push(keyName(key));
      continue;
    }
    if (name === undefined) throw new InputError(file, `has a tensor under the key ${describe(key)}, not a string`);
    if (value instanceof UnsupportedTensor) throw new InputError(file, `is a ${value.kind} tensor, which soup does not support`, { tensor: name });
    tensors.push(await describeTensor(file, container, name, value as TensorRef, tied, broadcast));
  }
  return { tensors, ignored };
}

async function describeTensor(
  file: string,
  container: Container,
  name: string,
  ref: TensorRef,
  tied: Map<string, string>,
  broadcast: { bytes: number },
): Promise<PytorchTensor> {
  const fail = (problem: string): InputError => new InputError(file, problem, { tensor: name });
  const storage: StorageRef = ref.storage;
  for (const type of [ref.type, storage.type]) {
    if (type.unsupported !== undefined) throw fail(`${type.unsupported} tensors are not supported`);
  }
  const dtype: DType = ref.type.dtype!;
  if (!storage.type.untyped && storage.type.dtype !== dtype) throw fail(`is ${ref.type.fullName} but its storage holds ${storage.type.fullName}`);
  if (storage.location.startsWith('meta')) throw fail('is a meta tensor (no data), which soup does not support');
  const size = dtypeSize(dtype);
  const label = container.label(storage.key);
  const data = await container.locate(storage.key);
  if (data === undefined) throw fail(`its storage ${label} is missing from the archive`);
  const storageBytes = storage.type.untyped ? storage.numel : storage.numel * size;
  if (!Number.isSafeInteger(storageBytes) || data.size !== storageBytes) {
    throw fail(
      `its storage ${label} holds ${data.size} bytes but the pickle says ${storage.numel} elements of ${storage.type.fullName} (${storageBytes} bytes)`,
    );
  }
  if (storageBytes % size !== 0) throw fail(`its untyped storage of ${storageBytes} bytes is not a whole number of ${dtype} elements`);
  const elements = storageBytes / size;
  const { shape, stride, offset } = ref;
  const count = shape.reduce((product, dim) => product * dim, 1);
  if (!Number.isSafeInteger(count * size)) throw fail(`shape [${shape.join(', ')}] is too large`);
  // A stride-0 (broadcast) view may hold more elements than its storage, but not absurdly many.
  if (count > elements) broadcast.bytes += count * size;
  if (count > elements && broadcast.bytes > MAX_BROADCAST_BYTES) {
    throw fail(
      `view of shape [${shape.join(', ')}] repeats a storage of ${elements} elements into ${count * size} bytes; the file's broadcast views expand to more than the ${MAX_BROADCAST_BYTES} bytes allowed`,
    );
  }
  let first = offset;
  let last = offset;
  for (let d = 0; d < shape.length; d++) if (shape[d]! > 0) last += (shape[d]! - 1) * stride[d]!;
  if (count > 0 && (!Number.isSafeInteger(last) || last >= elements)) {
    throw fail(
      `view (offset ${offset}, size [${shape.join(', ')}], stride [${stride.join(', ')}]) reaches element ${last} of a storage of ${elements} elements`,
    );
  }
  if (count === 0) first = last = 0;
  const info: PytorchTensor = {
    name,
    shape: [...shape],
    dtype,
    storedBytes: count * size,
    ref,
    start: data.start,
    elementSize: size,
    contiguous: isContiguous(shape, stride),
    first,
    last,
  };
  const identity = `${storage.key}|${dtype}|${offset}|${shape.join(',')}|${stride.join(',')}`;
  const earlier = tied.get(identity);
  if (earlier !== undefined && count > 0) info.tiedTo = earlier;
  else tied.set(identity, name);
  return info;
}

/** Row-major with no gaps; dimensions of size 1 may have any stride. */
function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    if (shape[d] === 0) return true;
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d]!;
  }
  return true;
}
