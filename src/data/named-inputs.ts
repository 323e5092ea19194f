import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { InputError, describeFsError } from '../errors.js';
import type { NumericArray } from './npy.js';
import { MAX_CLASSES } from './dataset.js';
import { parseNpz } from './npz.js';

/**
 * Validation data for a model with several inputs (input_ids, attention_mask, ...): an .npz whose
 * arrays are named like the inputs, plus `y` for the labels. Values are used as stored.
 */
export interface NamedInputs {
  name: string;
  path: string;
  n: number;
  y: Int32Array;
  arrays: Map<string, NumericArray>;
}

export async function loadNamedInputs(file: string, names: readonly string[]): Promise<NamedInputs> {
  if (path.extname(file).toLowerCase() !== '.npz') {
    throw new InputError(file, `a model with several inputs (${names.join(', ')}) takes an .npz with an array for each, named like them, and "y"`);
  }
  const bytes = await readFile(file).catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
  const all = parseNpz(bytes, file);
  const labels = all.get('y');
  if (labels === undefined) throw new InputError(file, `has no array "y" of labels (it has: ${[...all.keys()].join(', ') || 'none'})`);
  if (labels.shape.length !== 1 || !labels.integer)
    throw new InputError(`${file}:y.npy`, `labels must be a vector of integer class indices, got shape [${labels.shape.join(', ')}]`);
  const n = labels.shape[0]!;
  if (n === 0) throw new InputError(file, 'the data set is empty');
  const y = labels.values instanceof Int32Array ? labels.values : Int32Array.from(labels.values);
  const negative = y.findIndex((label) => label < 0);
  if (negative >= 0) throw new InputError(file, `label ${y[negative]} of sample ${negative} is negative`);
  const huge = y.findIndex((label) => label >= MAX_CLASSES);
  if (huge >= 0) throw new InputError(file, `label ${y[huge]} of sample ${huge} is beyond the ${MAX_CLASSES} classes soup handles`);
  const arrays = new Map<string, NumericArray>();
  for (const name of names) {
    const array = all.get(name);
    if (array === undefined) {
      throw new InputError(file, `has no array "${name}" for the model's input of that name (it has: ${[...all.keys()].join(', ')})`);
    }
    if (array.shape[0] !== n) throw new InputError(`${file}:${name}.npy`, `holds ${array.shape[0] ?? 0} samples but y has ${n} labels; they must be as many`);
    arrays.set(name, array);
  }
  return { name: path.basename(file).replace(/\.[^.]+$/, ''), path: file, n, y, arrays };
}
