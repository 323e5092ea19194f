import { crc32 } from 'node:zlib';

/**
 * Builds torch.save files byte by byte, from the pickle and zip specifications, independently of the
 * code under test: hostile pickles, odd archives and tensors no torch version writes.
 */

/** A pickle assembled from opcodes: each method appends one, so a test reads like pickletools.dis. */
export class Pickle {
  private readonly parts: number[] = [];

  bytes(): Uint8Array {
    return Uint8Array.from(this.parts);
  }

  raw(...bytes: number[]): this {
    this.parts.push(...bytes);
    return this;
  }

  proto(version: number): this {
    return this.raw(0x80, version);
  }

  stop(): this {
    return this.raw(0x2e);
  }

  mark(): this {
    return this.raw(0x28);
  }

  global(module: string, name: string): this {
    return this.raw(0x63, ...Buffer.from(`${module}\n${name}\n`, 'utf8'));
  }

  /** Protocol 4's STACK_GLOBAL, with both names as SHORT_BINUNICODE. */
  stackGlobal(module: string, name: string): this {
    return this.shortUnicode(module).shortUnicode(name).raw(0x93);
  }

  unicode(text: string): this {
    const bytes = Buffer.from(text, 'utf8');
    return this.raw(0x58, ...u32(bytes.length), ...bytes);
  }

  shortUnicode(text: string): this {
    const bytes = Buffer.from(text, 'utf8');
    return this.raw(0x8c, bytes.length, ...bytes);
  }

  int(value: number): this {
    if (value >= 0 && value < 256) return this.raw(0x4b, value);
    if (value >= 0 && value < 65536) return this.raw(0x4d, value & 0xff, value >> 8);
    if (value < -(2 ** 31) || value >= 2 ** 31) return this.long(BigInt(value));
    const bytes = Buffer.alloc(4);
    bytes.writeInt32LE(value);
    return this.raw(0x4a, ...bytes);
  }

  /** LONG1: any integer, as little-endian two's complement. */
  long(value: bigint): this {
    const bytes: number[] = [];
    let v = value;
    do {
      bytes.push(Number(v & 0xffn));
      v >>= 8n;
    } while (!((v === 0n && (bytes.at(-1)! & 0x80) === 0) || (v === -1n && (bytes.at(-1)! & 0x80) !== 0)));
    return this.raw(0x8a, bytes.length, ...bytes);
  }

  float(value: number): this {
    const bytes = Buffer.alloc(8);
    bytes.writeDoubleBE(value);
    return this.raw(0x47, ...bytes);
  }

  none(): this {
    return this.raw(0x4e);
  }

  bool(value: boolean): this {
    return this.raw(value ? 0x88 : 0x89);
  }

  emptyTuple(): this {
    return this.raw(0x29);
  }

  tuple(): this {
    return this.raw(0x74);
  }

  tupleN(n: 1 | 2 | 3): this {
    return this.raw(0x84 + n);
  }

  emptyList(): this {
    return this.raw(0x5d);
  }

  append(): this {
    return this.raw(0x61);
  }

  emptyDict(): this {
    return this.raw(0x7d);
  }

  setItem(): this {
    return this.raw(0x73);
  }

  setItems(): this {
    return this.raw(0x75);
  }

  reduce(): this {
    return this.raw(0x52);
  }

  build(): this {
    return this.raw(0x62);
  }

  binPersId(): this {
    return this.raw(0x51);
  }

  put(index: number): this {
    return this.raw(0x71, index);
  }

  get(index: number): this {
    return this.raw(0x68, index);
  }

  /** A sequence of ints as a tuple. */
  ints(values: readonly number[]): this {
    this.mark();
    for (const value of values) this.int(value);
    return this.tuple();
  }
}

export interface TensorSpec {
  name: string;
  /** Storage key: the record data/<key>. */
  key: string;
  storage?: string;
  /** Elements the persistent id claims the storage holds. */
  numel: number;
  offset?: number;
  shape: number[];
  stride?: number[];
}

function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) strides[d] = strides[d + 1]! * shape[d + 1]!;
  return strides;
}

/** Appends one tensor as torch.save writes it: _rebuild_tensor_v2(storage pid, offset, size, stride, False, OrderedDict()). */
export function pushTensor(p: Pickle, tensor: TensorSpec): Pickle {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark()
    .unicode('storage')
    .global('torch', tensor.storage ?? 'FloatStorage')
    .unicode(tensor.key)
    .unicode('cpu')
    .int(tensor.numel)
    .tuple()
    .binPersId();
  p.int(tensor.offset ?? 0)
    .ints(tensor.shape)
    .ints(tensor.stride ?? contiguousStrides(tensor.shape))
    .bool(false);
  p.global('collections', 'OrderedDict').emptyTuple().reduce();
  return p.tuple().reduce();
}

/** A protocol 2 state dict of these tensors, as torch.save(model.state_dict()) writes it. */
export function stateDictPickle(tensors: readonly TensorSpec[]): Uint8Array {
  const p = new Pickle().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const tensor of tensors) pushTensor(p.unicode(tensor.name), tensor);
  return p.setItems().stop().bytes();
}

export interface ZipEntry {
  name: string;
  data: Uint8Array;
  /** Bytes left unwritten before the entry (a sparse file's hole), to place it past 2 or 4 GiB. */
  gap?: number;
  /** Zip method to claim (the data stays as given): 8 for a "deflated" record. */
  method?: number;
}

function u16(value: number): number[] {
  return [value & 0xff, (value >> 8) & 0xff];
}

function u32(value: number): number[] {
  return [value & 0xff, (value >>> 8) & 0xff, (value >>> 16) & 0xff, (value >>> 24) & 0xff];
}

function u64(value: number): number[] {
  return [...u32(value % 2 ** 32), ...u32(Math.floor(value / 2 ** 32))];
}

/**
 * A zip as torch writes it: local headers with sizes 0 and a data descriptor (flag bit 3), sizes in
 * the central directory only. With `zip64`, the directory's sizes and offsets go in ZIP64 fields.
 */
export function storedZip(entries: readonly ZipEntry[], options: { zip64?: boolean } = {}): Uint8Array {
  if (entries.some((entry) => entry.gap !== undefined)) throw new Error('storedZip cannot leave holes: use zipParts');
  return new Uint8Array(Buffer.concat(zipParts(entries, options).map((part) => part.bytes)));
}

/** The pieces of a zip and where each goes: entries with a `gap` lie past a hole. */
export function zipParts(entries: readonly ZipEntry[], options: { zip64?: boolean } = {}): { offset: number; bytes: Uint8Array }[] {
  const parts: { offset: number; bytes: Uint8Array }[] = [];
  let position = 0;
  const place = (...items: Uint8Array[]): void => {
    for (const bytes of items) {
      parts.push({ offset: position, bytes });
      position += bytes.length;
    }
  };
  const central: number[] = [];
  let offset = 0;
  for (const entry of entries) {
    offset += entry.gap ?? 0;
    position += entry.gap ?? 0;
    const name = Buffer.from(entry.name, 'utf8');
    const crc = crc32(entry.data);
    const method = entry.method ?? 0;
    const local = Uint8Array.from([
      ...u32(0x04034b50),
      ...u16(45),
      ...u16(8),
      ...u16(method),
      ...u16(0),
      ...u16(0),
      ...u32(0),
      ...u32(0),
      ...u32(0),
      ...u16(name.length),
      ...u16(0),
      ...name,
    ]);
    const descriptor = Uint8Array.from([...u32(0x08074b50), ...u32(crc), ...u32(entry.data.length), ...u32(entry.data.length)]);
    const extra = options.zip64 ? [...u16(1), ...u16(24), ...u64(entry.data.length), ...u64(entry.data.length), ...u64(offset)] : [];
    const big = options.zip64 ? 0xffffffff : undefined;
    central.push(
      ...u32(0x02014b50),
      ...u16(45),
      ...u16(45),
      ...u16(8),
      ...u16(method),
      ...u16(0),
      ...u16(0),
      ...u32(crc),
      ...u32(big ?? entry.data.length),
      ...u32(big ?? entry.data.length),
      ...u16(name.length),
      ...u16(extra.length),
      ...u16(0),
      ...u16(0),
      ...u16(0),
      ...u32(0),
      ...u32(big ?? offset),
      ...name,
      ...extra,
    );
    place(local, entry.data, descriptor);
    offset += local.length + entry.data.length + descriptor.length;
  }
  const directory = Uint8Array.from(central);
  const directoryOffset = offset;
  place(directory);
  if (options.zip64) {
    const record = [
      ...u32(0x06064b50),
      ...u64(44),
      ...u16(45),
      ...u16(45),
      ...u32(0),
      ...u32(0),
      ...u64(entries.length),
      ...u64(entries.length),
      ...u64(directory.length),
      ...u64(directoryOffset),
    ];
    const recordOffset = directoryOffset + directory.length;
    place(Uint8Array.from(record), Uint8Array.from([...u32(0x07064b50), ...u32(0), ...u64(recordOffset), ...u32(1)]));
    place(Uint8Array.from([...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(0xffff), ...u16(0xffff), ...u32(0xffffffff), ...u32(0xffffffff), ...u16(0)]));
  } else {
    place(
      Uint8Array.from([
        ...u32(0x06054b50),
        ...u16(0),
        ...u16(0),
        ...u16(entries.length),
        ...u16(entries.length),
        ...u32(directory.length),
        ...u32(directoryOffset),
        ...u16(0),
      ]),
    );
  }
  return parts;
}

export const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

/** A torch.save archive of a state dict: data.pkl, the storages, and version, under `prefix`. */
export function torchArchive(
  tensors: readonly TensorSpec[],
  storages: Record<string, Uint8Array>,
  options: { prefix?: string; pickle?: Uint8Array; extra?: ZipEntry[]; zip64?: boolean } = {},
): Uint8Array {
  const prefix = options.prefix ?? 'archive';
  return storedZip(
    [
      { name: `${prefix}/data.pkl`, data: options.pickle ?? stateDictPickle(tensors) },
      ...Object.entries(storages).map(([key, data]) => ({ name: `${prefix}/data/${key}`, data })),
      { name: `${prefix}/version`, data: Buffer.from('3\n') },
      ...(options.extra ?? []),
    ],
    { zip64: options.zip64 ?? false },
  );
}

/** A plain two-tensor state dict with known values: weight [2, 3] = 0..5, bias [2] = 10, 11. */
export function simpleArchive(options: { prefix?: string; pickle?: Uint8Array; extra?: ZipEntry[]; zip64?: boolean } = {}): Uint8Array {
  return torchArchive(
    [
      { name: 'weight', key: '0', numel: 6, shape: [2, 3] },
      { name: 'bias', key: '1', numel: 2, shape: [2] },
    ],
    { '0': f32Bytes([0, 1, 2, 3, 4, 5]), '1': f32Bytes([10, 11]) },
    options,
  );
}

/** A pickle that runs `module.name(argument)` when loaded by Python's pickle: what soup must never do. */
export function callingPickle(protocol: 2 | 4, module: string, name: string, argument: string): Uint8Array {
  const p = new Pickle().proto(protocol);
  if (protocol === 4) p.stackGlobal(module, name);
  else p.global(module, name);
  return p.unicode(argument).tupleN(1).reduce().stop().bytes();
}
