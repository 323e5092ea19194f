import { readFile, stat } from 'node:fs/promises';
import { unzipSync, type UnzipFileInfo } from 'fflate';
import { InputError, describeFsError } from '../errors.js';
import { parseNpy, type NumericArray } from './npy.js';
import type { NpzArray } from './npz-array.js';
import { openLargeNpz } from './npz-stream.js';

export type { NpzArray };

/** Reads the arrays of an .npz file (np.savez or np.savez_compressed), by name without ".npy". */
export function parseNpz(bytes: Uint8Array, file: string): Map<string, NumericArray> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes, { filter: (entry) => entry.name.endsWith('.npy') && checkEntrySize(entry, bytes.length, file) });
  } catch (error) {
    if (error instanceof InputError) throw error;
    throw new InputError(file, `not a readable .npz (zip) file: ${(error as Error).message}`, { cause: error });
  }
  const arrays = new Map<string, NumericArray>();
  for (const [name, data] of Object.entries(entries)) {
    if (!name.endsWith('.npy')) continue;
    arrays.set(name.slice(0, -4), parseNpy(data, `${file}:${name}`));
  }
  return arrays;
}

/** Deflate cannot expand data more than about 1032 times; a larger claim is a corrupt or hostile size field. */
const MAX_DEFLATE_RATIO = 1032;

/**
 * The unzipper allocates each entry's declared size up front, so a lying size field must be refused
 * before it becomes an allocation the file does not back.
 */
function checkEntrySize(entry: UnzipFileInfo, archiveBytes: number, file: string): boolean {
  if (entry.size > archiveBytes) {
    throw new InputError(`${file}:${entry.name}`, `claims ${entry.size} compressed bytes, but the archive holds ${archiveBytes} (truncated or corrupt)`);
  }
  const limit = entry.compression === 0 ? entry.size : entry.size * MAX_DEFLATE_RATIO + 1024;
  if (entry.originalSize > limit) {
    throw new InputError(
      `${file}:${entry.name}`,
      `claims ${entry.originalSize} bytes from ${entry.size} compressed bytes, more than the data can hold (corrupt or hostile file)`,
    );
  }
  return true;
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
