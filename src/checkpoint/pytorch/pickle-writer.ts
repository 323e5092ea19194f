import type { DType } from '../dtype.js';

/**
 * torch's legacy typed-storage class for each dtype: what torch.save pickles as a storage's type in
 * every version from 1.6 on, and what torch 1.13's weights_only allow-list accepts (it has no
 * UntypedStorage or dtype globals for bf16/bool, and no storage for unsigned ints wider than a byte).
 */
export const TORCH_STORAGE_CLASSES: Partial<Record<DType, string>> = {
  F64: 'DoubleStorage',
  F32: 'FloatStorage',
  F16: 'HalfStorage',
  BF16: 'BFloat16Storage',
  I64: 'LongStorage',
  I32: 'IntStorage',
  I16: 'ShortStorage',
  I8: 'CharStorage',
  U8: 'ByteStorage',
  BOOL: 'BoolStorage',
};

/** One entry of the state dict: a view of a storage record `data/<storageKey>`. */
export interface PickledTensor {
  name: string;
  dtype: DType;
  storageKey: string;
  /** Elements in the storage. */
  storageElements: number;
  /** In elements, as torch counts it. */
  storageOffset: number;
  shape: readonly number[];
  stride: readonly number[];
}

// Pickle opcodes: only those torch 1.13's _weights_only_unpickler.py handles (no float opcodes, no
// protocol-4 framing or short strings), so every torch from 1.13 on loads what we write with weights_only=True.
const PROTO = 0x80;
const GLOBAL = 0x63; // c
const BINPUT = 0x71; // q
const BINGET = 0x68; // h
const EMPTY_TUPLE = 0x29; // )
const REDUCE = 0x52; // R
const MARK = 0x28; // (
const TUPLE = 0x74; // t
const TUPLE1 = 0x85;
const TUPLE2 = 0x86;
const TUPLE3 = 0x87;
const BINUNICODE = 0x58; // X
const BININT = 0x4a; // J
const BININT1 = 0x4b; // K
const BININT2 = 0x4d; // M
const LONG1 = 0x8a;
const BINPERSID = 0x51; // Q
const NEWFALSE = 0x89;
const SETITEMS = 0x75; // u
const STOP = 0x2e; // .
/** Python's pickler closes a SETITEMS batch every 1000 items; we do the same. */
const BATCH = 1000;

/** Appends pickle opcodes to a growing buffer. */
class PickleBuilder {
  private bytes = new Uint8Array(4096);
  private length = 0;
  /** Memo slots of the globals already emitted, so each is spelled out once. */
  private readonly globals = new Map<string, number>();

  op(...codes: number[]): void {
    this.reserve(codes.length);
    for (const code of codes) this.bytes[this.length++] = code;
  }

  raw(data: Uint8Array): void {
    this.reserve(data.length);
    this.bytes.set(data, this.length);
    this.length += data.length;
  }

  /** A non-negative integer in the shortest form the unpickler reads; LONG1 beyond 2^31 - 1, exact up to 2^53. */
  int(value: number): void {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`internal: cannot pickle ${value} as a size`);
    if (value < 0x100) return this.op(BININT1, value);
    if (value < 0x10000) return this.op(BININT2, value & 0xff, value >> 8);
    if (value < 0x80000000) return this.op(BININT, value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff, value >>> 24);
    // Python's encode_long: little-endian two's complement, one byte more than the bits need, so the sign bit is 0.
    const bytes: number[] = [];
    let rest = BigInt(value);
    const count = (rest.toString(2).length >> 3) + 1;
    for (let i = 0; i < count; i++) {
      bytes.push(Number(rest & 0xffn));
      rest >>= 8n;
    }
    this.op(LONG1, count, ...bytes);
  }

  string(text: string): void {
    const utf8 = new TextEncoder().encode(text);
    const n = utf8.length;
    this.op(BINUNICODE, n & 0xff, (n >> 8) & 0xff, (n >> 16) & 0xff, n >>> 24);
    this.raw(utf8);
  }

  global(module: string, name: string): void {
    const key = `${module}\n${name}\n`;
    const slot = this.globals.get(key);
    if (slot !== undefined) return this.op(BINGET, slot);
    this.op(GLOBAL);
    this.raw(new TextEncoder().encode(key));
    // BINPUT takes one byte: the handful of globals a state dict needs stays far below 256.
    const next = this.globals.size;
    this.globals.set(key, next);
    this.op(BINPUT, next);
  }

  tuple(items: readonly number[]): void {
    if (items.length === 0) return this.op(EMPTY_TUPLE);
    if (items.length > 3) this.op(MARK);
    for (const item of items) this.int(item);
    if (items.length > 3) this.op(TUPLE);
    else this.op([TUPLE1, TUPLE2, TUPLE3][items.length - 1]!);
  }

  result(): Uint8Array {
    return this.bytes.subarray(0, this.length);
  }

  private reserve(extra: number): void {
    if (this.length + extra <= this.bytes.length) return;
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + extra));
    grown.set(this.bytes.subarray(0, this.length));
    this.bytes = grown;
  }
}

/**
 * The data.pkl of a torch.save'd state dict: an OrderedDict mapping each name to
 * `torch._utils._rebuild_tensor_v2(persistent_load(('storage', torch.<Type>Storage, key, 'cpu', numel)),
 * offset, size, stride, False, OrderedDict())`, as torch.save itself pickles it at protocol 2. Two
 * entries with the same storage key load as one storage (tied weights), because torch caches
 * storages by key.
 */
export function pickleStateDict(tensors: readonly PickledTensor[]): Uint8Array {
  const p = new PickleBuilder();
  p.op(PROTO, 2);
  p.global('collections', 'OrderedDict');
  p.op(EMPTY_TUPLE, REDUCE);
  for (let start = 0; start < tensors.length; start += BATCH) {
    p.op(MARK);
    for (const tensor of tensors.slice(start, start + BATCH)) pickleEntry(p, tensor);
    p.op(SETITEMS);
  }
  p.op(STOP);
  return p.result();
}

function pickleEntry(p: PickleBuilder, tensor: PickledTensor): void {
  const storageClass = TORCH_STORAGE_CLASSES[tensor.dtype];
  if (storageClass === undefined) throw new Error(`internal: torch has no storage class for ${tensor.dtype}`);
  p.string(tensor.name);
  p.global('torch._utils', '_rebuild_tensor_v2');
  p.op(MARK);
  p.op(MARK);
  p.string('storage');
  p.global('torch', storageClass);
  p.string(tensor.storageKey);
  p.string('cpu');
  p.int(tensor.storageElements);
  p.op(TUPLE, BINPERSID);
  p.int(tensor.storageOffset);
  p.tuple(tensor.shape);
  p.tuple(tensor.stride);
  p.op(NEWFALSE);
  p.global('collections', 'OrderedDict');
  p.op(EMPTY_TUPLE, REDUCE);
  p.op(TUPLE, REDUCE);
}

/** Row-major (contiguous) strides of a shape, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let step = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = step;
    step *= Math.max(1, shape[i]!);
  }
  return strides;
}
