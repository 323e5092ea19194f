import { unzipSync } from 'fflate';
import { InputError } from '../errors.js';
import { parseNpy, type NumericArray } from './npy.js';

/** Reads the arrays of an .npz file (np.savez or np.savez_compressed), by name without ".npy". */
export function parseNpz(bytes: Uint8Array, file: string): Map<string, NumericArray> {
  let entries: Record<string, Uint8Array>;
  try {
    entries = unzipSync(bytes);
  } catch (error) {
    throw new InputError(file, `not a readable .npz (zip) file: ${(error as Error).message}`, { cause: error });
  }
  const arrays = new Map<string, NumericArray>();
  for (const [name, data] of Object.entries(entries)) {
    if (!name.endsWith('.npy')) continue;
    arrays.set(name.slice(0, -4), parseNpy(data, `${file}:${name}`));
  }
  return arrays;
}
