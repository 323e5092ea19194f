import { readFile, stat } from 'node:fs/promises';
import { crc32, inflateRawSync } from 'node:zlib';
import { InputError, describeFsError } from '../errors.js';
import { parseNpy, type NumericArray } from './npy.js';
import { MAX_DEFLATE_RATIO, crcMismatch, openLargeNpz, readCentralDirectorySync, type Entry } from './npz-stream.js';
import { oneLine } from '../one-line.js';
import type { NpzArray } from './npz-array.js';

export type { NpzArray };

/** Bytes an .npz may inflate to in memory, all the arrays read together; a larger one is read by rows. */
export const MAX_INFLATED_IN_MEMORY = 512 * 1024 * 1024;

/**
 * Reads the arrays of an .npz file (np.savez or np.savez_compressed), by name without ".npy": only
 * those `wanted` (all when undefined). Each entry is inflated to exactly the size its directory
 * claims, no further, and its CRC-32 checked, as numpy does.
 */
export function parseNpz(bytes: Uint8Array, file: string, options: { wanted?: readonly string[]; maxBytes?: number } = {}): Map<string, NumericArray> {
  const maxBytes = options.maxBytes ?? MAX_INFLATED_IN_MEMORY;
  const entries = npyEntries(bytes, file, options.wanted);
  const total = entries.reduce((sum, entry) => sum + entry.size, 0);
  if (total > maxBytes) {
    throw new InputError(file, `its arrays inflate to ${total} bytes, more than the ${maxBytes} soup reads into memory at once`, {
      hint: 'keep only the arrays the model needs in the .npz, or save it uncompressed (np.savez) so it is read by rows',
    });
  }
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const arrays = new Map<string, NumericArray>();
  for (const entry of entries) {
    const where = `${file}:${entry.name}`;
    const data = entryBytes(buffer, entry, where);
    arrays.set(entry.name.slice(0, -4), parseNpy(data, where));
  }
  return arrays;
}

/** The .npy entries of an in-memory .npz, checked against the bytes really there. */
function npyEntries(bytes: Uint8Array, file: string, wanted: readonly string[] | undefined): Entry[] {
  let entries: Entry[];
  try {
    entries = readCentralDirectorySync(bytes, file);
  } catch (error) {
    if (error instanceof RangeError) throw new InputError(file, `not a readable .npz (zip) file: ${error.message}`, { cause: error });
    throw error;
  }
  const names = new Set<string>();
  return entries.filter((entry) => {
    if (!entry.name.endsWith('.npy')) return false;
    const name = entry.name.slice(0, -4);
    if (names.has(name)) throw new InputError(file, `holds the array "${oneLine(name, 100)}" twice`);
    names.add(name);
    if (wanted !== undefined && !wanted.includes(name)) return false;
    checkEntrySize(entry, bytes.length, file);
    return true;
  });
}

function entryBytes(buffer: Buffer, entry: Entry, where: string): Uint8Array {
  if (entry.method !== 0 && entry.method !== 8)
    throw new InputError(where, `compression method ${entry.method} is not supported (np.savez and np.savez_compressed use 0 and 8)`);
  if (entry.localOffset + 30 > buffer.length || buffer.readUInt32LE(entry.localOffset) !== 0x04034b50) {
    throw new InputError(where, 'the local header is missing (truncated or corrupt .npz)');
  }
  const dataStart = entry.localOffset + 30 + buffer.readUInt16LE(entry.localOffset + 26) + buffer.readUInt16LE(entry.localOffset + 28);
  if (dataStart + entry.compressedSize > buffer.length) {
    throw new InputError(where, `claims ${entry.compressedSize} bytes at offset ${dataStart}, past the end of the file (truncated)`);
  }
  const stored = buffer.subarray(dataStart, dataStart + entry.compressedSize);
  let data: Buffer = stored;
  if (entry.method === 8) {
    try {
      // Never more than the entry claims: the claim is what was checked against the budget.
      data = inflateRawSync(stored, { maxOutputLength: Math.max(1, entry.size) });
    } catch (error) {
      const problem =
        (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE'
          ? `inflates to more than the ${entry.size} bytes its zip entry claims`
          : (error as Error).message;
      throw new InputError(where, `not a readable .npz (zip) entry: ${problem}`, { cause: error });
    }
  }
  if (data.length !== entry.size) throw new InputError(where, `holds ${data.length} bytes but its zip entry claims ${entry.size} (corrupt file)`);
  const sum = crc32(data);
  if (sum >>> 0 !== entry.crc) throw crcMismatch(where, sum, entry.crc);
  // A plain view: Buffer's slice() does not copy, and the decoders copy misaligned data with slice().
  return new Uint8Array(data.buffer, data.byteOffset, data.length);
}

/**
 * A size field must be checked before it becomes an allocation the file does not back: deflate
 * cannot expand data more than about 1032 times.
 */
function checkEntrySize(entry: Entry, archiveBytes: number, file: string): void {
  if (entry.compressedSize > archiveBytes) {
    throw new InputError(
      `${file}:${entry.name}`,
      `claims ${entry.compressedSize} compressed bytes, but the archive holds ${archiveBytes} (truncated or corrupt)`,
    );
  }
  const limit = entry.method === 0 ? entry.compressedSize : entry.compressedSize * MAX_DEFLATE_RATIO + 1024;
  if (entry.size > limit) {
    throw new InputError(
      `${file}:${entry.name}`,
      `claims ${entry.size} bytes from ${entry.compressedSize} compressed bytes, more than the data can hold (corrupt or hostile file)`,
    );
  }
}

/** Opens the arrays of an .npz file by name: in memory up to `inMemoryBytes` of file, else read by rows from disk. */
export async function openNpzArrays(file: string, inMemoryBytes: number): Promise<{ arrays: Map<string, NpzArray> }> {
  const size = await stat(file).then(
    (info) => info.size,
    (error: unknown) => {
      throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
    },
  );
  if (size > inMemoryBytes) return { arrays: await openLargeNpz(file, size) };
  const bytes = await readFile(file).catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
  // What decides memory is what the arrays inflate to, not the size of the file.
  const inflated = npyEntries(bytes, file, undefined).reduce((sum, entry) => sum + entry.size, 0);
  if (inflated > Math.min(inMemoryBytes, MAX_INFLATED_IN_MEMORY)) return { arrays: await openLargeNpz(file, size) };
  const arrays = new Map<string, NpzArray>();
  for (const [name, array] of parseNpz(bytes, file)) {
    arrays.set(name, {
      shape: array.shape,
      large: false,
      readAll: async () => array,
      readRows: async (start, count, rowSize) => array.values.subarray(start * rowSize, (start + count) * rowSize),
    });
  }
  return { arrays };
}
