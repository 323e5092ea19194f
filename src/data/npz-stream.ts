import { createReadStream } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { createInflateRaw, crc32 } from 'node:zlib';
import { InputError, describeFsError } from '../errors.js';
import type { NumericArray } from './npy.js';
import { parseNpyHeader, type NpyHeader } from './npy.js';
import type { NpzArray } from './npz-array.js';

/**
 * Arrays of an .npz too large for memory, read by rows: a stored (np.savez) entry by offset, a
 * deflated (np.savez_compressed) one by inflating from its start (again only when rows are asked for
 * out of order). Only the zip's central directory and the .npy headers are read up front.
 */
export async function openLargeNpz(file: string, fileSize: number): Promise<Map<string, NpzArray>> {
  const handle = await open(file, 'r').catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
  try {
    const entries = await readCentralDirectory(handle, file, fileSize);
    const arrays = new Map<string, NpzArray>();
    for (const entry of entries) {
      if (!entry.name.endsWith('.npy')) continue;
      const where = `${file}:${entry.name}`;
      if (entry.method !== 0 && entry.method !== 8)
        throw new InputError(where, `compression method ${entry.method} is not supported (np.savez and np.savez_compressed use 0 and 8)`);
      const local = await readAt(handle, entry.localOffset, 30, file);
      if (local.readUInt32LE(0) !== 0x04034b50) throw new InputError(where, 'the local header is missing (truncated or corrupt .npz)');
      const dataStart = entry.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (dataStart + entry.compressedSize > fileSize)
        throw new InputError(where, `claims ${entry.compressedSize} bytes at offset ${dataStart}, past the end of the file (truncated)`);
      // Sizes are checked against the bytes really there before anything is allocated from them.
      const limit = entry.method === 0 ? entry.compressedSize : entry.compressedSize * MAX_DEFLATE_RATIO + 1024;
      if (entry.size > limit)
        throw new InputError(
          where,
          `claims ${entry.size} bytes from ${entry.compressedSize} stored bytes, more than the data can hold (corrupt or hostile file)`,
        );
      const source = checkedSource(entry.method === 0 ? storedSource(file, dataStart) : deflatedSource(file, dataStart, entry.compressedSize), entry, where);
      const header = await readHeader(source, where, entry.size);
      const count = header.shape.reduce((a, b) => a * b, 1);
      if (header.dataStart + count * header.itemSize !== entry.size) {
        throw new InputError(
          where,
          `shape (${header.shape.join(', ')}) needs ${count * header.itemSize} bytes, the entry holds ${entry.size - header.dataStart}`,
        );
      }
      arrays.set(entry.name.slice(0, -4), npzArray(header, source, where));
    }
    return arrays;
  } catch (error) {
    // A field pointing past the bytes read (Buffer's bounds check) is a corrupt file, not a bug.
    if (error instanceof RangeError) throw new InputError(file, `not a readable .npz (zip) file: ${error.message}`, { cause: error });
    throw error;
  } finally {
    await handle.close();
  }
}

/** Deflate cannot expand data more than about 1032 times. */
export const MAX_DEFLATE_RATIO = 1032;

export interface Entry {
  name: string;
  method: number;
  /** CRC-32 of the uncompressed content, from the central directory. */
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

async function readAt(handle: FileHandle, position: number, length: number, file: string): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  const { bytesRead } = await handle.read(buffer, 0, length, position);
  if (bytesRead !== length) throw new InputError(file, 'not a readable .npz (zip) file: truncated');
  return buffer;
}

/** The zip's entries from its central directory (ZIP64 records included: numpy writes them). */
async function readCentralDirectory(handle: FileHandle, file: string, fileSize: number): Promise<Entry[]> {
  const tailLength = Math.min(fileSize, 22 + 65535 + 20);
  const tail = await readAt(handle, fileSize - tailLength, tailLength, file);
  let where = locateDirectory(tail, file);
  if ('zip64At' in where) where = readZip64Record(await readAt(handle, where.zip64At, 56, file), file);
  if (where.offset + where.size > fileSize || where.size > 64 * 1024 * 1024)
    throw new InputError(file, 'not a readable .npz (zip) file: the central directory lies outside the file');
  return parseDirectory(await readAt(handle, where.offset, where.size, file), where.count, file);
}

/** The same, for an archive held in memory. */
export function readCentralDirectorySync(bytes: Uint8Array, file: string): Entry[] {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const slice = (position: number, length: number): Buffer => {
    if (position < 0 || position + length > buffer.length) throw new InputError(file, 'not a readable .npz (zip) file: truncated');
    return buffer.subarray(position, position + length);
  };
  const tailLength = Math.min(buffer.length, 22 + 65535 + 20);
  let where = locateDirectory(slice(buffer.length - tailLength, tailLength), file);
  if ('zip64At' in where) where = readZip64Record(slice(where.zip64At, 56), file);
  if (where.offset + where.size > buffer.length) throw new InputError(file, 'not a readable .npz (zip) file: the central directory lies outside the file');
  return parseDirectory(slice(where.offset, where.size), where.count, file);
}

interface DirectoryPlace {
  count: number;
  size: number;
  offset: number;
}

function locateDirectory(tail: Buffer, file: string): DirectoryPlace | { zip64At: number } {
  const eocd = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0 || eocd + 22 > tail.length) throw new InputError(file, 'not a readable .npz (zip) file: no end of central directory');
  const count = tail.readUInt16LE(eocd + 10);
  const size = tail.readUInt32LE(eocd + 12);
  const offset = tail.readUInt32LE(eocd + 16);
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    const locator = eocd - 20;
    if (locator < 0 || tail.readUInt32LE(locator) !== 0x07064b50) throw new InputError(file, 'not a readable .npz (zip) file: ZIP64 locator missing');
    return { zip64At: Number(tail.readBigUInt64LE(locator + 8)) };
  }
  return { count, size, offset };
}

function readZip64Record(record: Buffer, file: string): DirectoryPlace {
  if (record.readUInt32LE(0) !== 0x06064b50) throw new InputError(file, 'not a readable .npz (zip) file: ZIP64 end record missing');
  return { count: Number(record.readBigUInt64LE(32)), size: Number(record.readBigUInt64LE(40)), offset: Number(record.readBigUInt64LE(48)) };
}

function parseDirectory(directory: Buffer, count: number, file: string): Entry[] {
  const entries: Entry[] = [];
  for (let at = 0, k = 0; k < count; k++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== 0x02014b50)
      throw new InputError(file, 'not a readable .npz (zip) file: corrupt central directory');
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    const entry: Entry = {
      name: directory.toString('utf8', at + 46, at + 46 + nameLength),
      method: directory.readUInt16LE(at + 10),
      crc: directory.readUInt32LE(at + 16),
      compressedSize: directory.readUInt32LE(at + 20),
      size: directory.readUInt32LE(at + 24),
      localOffset: directory.readUInt32LE(at + 42),
    };
    readZip64Extra(directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), entry);
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** ZIP64 extra field: 64-bit values for those of size, compressed size and offset that are 0xffffffff, in that order. */
function readZip64Extra(extra: Buffer, entry: Entry): void {
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(at);
    const length = extra.readUInt16LE(at + 2);
    if (id === 0x0001) {
      let field = at + 4;
      for (const key of ['size', 'compressedSize', 'localOffset'] as const) {
        if (entry[key] === 0xffffffff && field + 8 <= at + 4 + length) {
          entry[key] = Number(extra.readBigUInt64LE(field));
          field += 8;
        }
      }
    }
    at += 4 + length;
  }
}

/** Bytes of an entry's uncompressed content, from `position` on. */
interface ByteSource {
  read(position: number, length: number): Promise<Uint8Array>;
}

/**
 * Checks the entry's CRC-32 as its bytes go by: reads from the start on, in order (as a pass over
 * the data set makes them), are summed; when the last byte has been read the sum must match the
 * zip's, or the read fails, so a byte-flipped file is never scored.
 */
function checkedSource(source: ByteSource, entry: Entry, where: string): ByteSource {
  let checkedUpTo = 0;
  let sum = 0;
  return {
    async read(position, length) {
      const bytes = await source.read(position, length);
      if (position <= checkedUpTo && position + length > checkedUpTo) {
        sum = crc32(bytes.subarray(checkedUpTo - position), sum);
        checkedUpTo = position + length;
        if (checkedUpTo === entry.size && sum >>> 0 !== entry.crc) throw crcMismatch(where, sum, entry.crc);
      }
      return bytes;
    },
  };
}

export function crcMismatch(where: string, actual: number, expected: number): InputError {
  const hex = (value: number): string => (value >>> 0).toString(16).padStart(8, '0');
  return new InputError(where, `CRC-32 check failed (the data sums to ${hex(actual)}, the zip says ${hex(expected)}): the file is corrupt`);
}

function storedSource(file: string, dataStart: number): ByteSource {
  return {
    async read(position, length) {
      const handle = await open(file, 'r');
      try {
        return await readAt(handle, dataStart + position, length, file);
      } finally {
        await handle.close();
      }
    },
  };
}

/** Inflates forward from wherever the last read ended; a read behind that point starts over from the entry's start. */
function deflatedSource(file: string, dataStart: number, compressedSize: number): ByteSource {
  let chunks: AsyncIterator<Buffer> | undefined;
  let pending: Buffer = Buffer.alloc(0);
  let pendingStart = 0;
  const restart = (): void => {
    const input = createReadStream(file, { start: dataStart, end: dataStart + compressedSize - 1, highWaterMark: 1 << 20 });
    const inflate = createInflateRaw({ chunkSize: 1 << 20 });
    input.on('error', (error) => inflate.destroy(error));
    input.pipe(inflate);
    chunks = inflate[Symbol.asyncIterator]();
    pending = Buffer.alloc(0);
    pendingStart = 0;
  };
  return {
    async read(position, length) {
      if (chunks === undefined || position < pendingStart) restart();
      const out = new Uint8Array(length);
      let filled = 0;
      while (filled < length) {
        const offsetInPending = position + filled - pendingStart;
        if (offsetInPending < pending.length) {
          const take = Math.min(pending.length - offsetInPending, length - filled);
          out.set(pending.subarray(offsetInPending, offsetInPending + take), filled);
          filled += take;
          continue;
        }
        let next: IteratorResult<Buffer>;
        try {
          next = await chunks!.next();
        } catch (error) {
          chunks = undefined;
          throw new InputError(file, `not a readable .npz (zip) file: ${(error as Error).message}`, { cause: error });
        }
        if (next.done) {
          chunks = undefined;
          throw new InputError(file, 'not a readable .npz (zip) file: a compressed entry ends early (truncated)');
        }
        pendingStart += pending.length;
        pending = next.value;
      }
      return out;
    },
  };
}

async function readHeader(source: ByteSource, where: string, entrySize: number): Promise<NpyHeader> {
  for (let length = Math.min(128, entrySize); ; length = Math.min(entrySize, length * 8)) {
    const header = parseNpyHeader(await source.read(0, length), where);
    if (header !== undefined) return header;
    if (length >= entrySize || length >= 1 << 20) throw new InputError(where, 'unsupported or truncated .npy header');
  }
}

function npzArray(header: NpyHeader, source: ByteSource, where: string): NpzArray {
  const { shape, itemSize } = header;
  const readRows = async (start: number, count: number, rowSize: number): Promise<NumericArray['values']> => {
    const bytes = await source.read(header.dataStart + start * rowSize * itemSize, count * rowSize * itemSize);
    return header.decode(bytes, count * rowSize);
  };
  return {
    shape,
    large: true,
    readAll: async () => {
      const rows = shape[0] ?? 1;
      const rowSize = shape.slice(1).reduce((a, b) => a * b, 1);
      return { shape, values: await readRows(0, rows, rowSize), integer: header.integer };
    },
    readRows: (start, count, rowSize) => {
      if (start < 0 || start + count > (shape[0] ?? 0))
        return Promise.reject(new InputError(where, `rows ${start} to ${start + count} are outside the array's ${shape[0]}`));
      return readRows(start, count, rowSize);
    },
  };
}
