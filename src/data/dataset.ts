import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { z } from 'zod';
import { InputError, describeFsError } from '../errors.js';
import { parseCsv } from './csv.js';
import { parseIdx } from './idx.js';
import { readImageFolder } from './images.js';
import type { NumericArray } from './npy.js';
import { parseNpz } from './npz.js';

/** A labelled data set held in memory: validation and test sets are small next to the models. */
export interface Dataset {
  /** Short name for reports: the file name without extension, or the folder name. */
  name: string;
  path: string;
  format: 'npz' | 'idx' | 'csv' | 'images';
  n: number;
  /** Shape of one sample as stored, e.g. [28, 28]. */
  sampleShape: number[];
  /** n samples back to back, preprocessed (x * scale + offset). */
  x: Float32Array;
  y: Int32Array;
  scale: number;
  offset: number;
}

export interface Preprocessing {
  scale?: number | undefined;
  offset?: number | undefined;
}

const preprocessingSchema = z.strictObject({
  scale: z.number().finite().optional(),
  offset: z.number().finite().optional(),
  description: z.string().optional(),
});
export const DATASET_JSON = 'dataset.json';

/**
 * Reads validation or test data: an .npz with arrays x and y, a folder of IDX files (MNIST layout,
 * raw or .gz), a CSV with a label column, or a folder of class sub-folders of images. Preprocessing
 * comes from the flags, else from a dataset.json beside the data, else none.
 */
export async function loadDataset(target: string, flags: Preprocessing = {}): Promise<Dataset> {
  const info = await stat(target).catch((error: unknown) => {
    throw new InputError(target, describeFsError(error), { cause: error });
  });
  const raw = info.isDirectory() ? await loadFolder(target) : await loadFile(target);
  const n = raw.y.length;
  if (n === 0) throw new InputError(target, 'the data set is empty');
  const sampleSize = raw.sampleShape.reduce((a, b) => a * b, 1);
  if (raw.x.length !== n * sampleSize) {
    throw new InputError(target, `${raw.x.length / Math.max(sampleSize, 1)} samples but ${n} labels; they must be as many`);
  }
  const negative = raw.y.findIndex((label) => label < 0);
  if (negative >= 0) throw new InputError(target, `label ${raw.y[negative]} of sample ${negative} is negative`);
  const stored = await readPreprocessing(target, info.isDirectory());
  const scale = flags.scale ?? stored.scale ?? 1;
  const offset = flags.offset ?? stored.offset ?? 0;
  const x = raw.x instanceof Float32Array && raw.owned ? raw.x : Float32Array.from(raw.x);
  if (scale !== 1 || offset !== 0) for (let i = 0; i < x.length; i++) x[i] = x[i]! * scale + offset;
  const name = info.isDirectory() ? path.basename(path.resolve(target)) : path.basename(target).replace(/\.[^.]+$/, '');
  return { name, path: target, format: raw.format, n, sampleShape: raw.sampleShape, x, y: raw.y, scale, offset };
}

interface RawData {
  format: Dataset['format'];
  x: ArrayLike<number> & { length: number };
  /** x is a fresh Float32Array nobody else holds, so preprocessing may work in place. */
  owned: boolean;
  y: Int32Array;
  sampleShape: number[];
}

async function readBytes(file: string): Promise<Uint8Array> {
  return readFile(file).catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
}

function labelsOf(array: NumericArray, file: string): Int32Array {
  if (array.shape.length !== 1 && !(array.shape.length === 2 && array.shape[1] === 1)) {
    throw new InputError(file, `labels must be a vector of class indices, got shape [${array.shape.join(', ')}]`);
  }
  if (!array.integer) {
    const fractional = Array.prototype.findIndex.call(array.values, (v: number) => !Number.isInteger(v));
    if (fractional >= 0) throw new InputError(file, `label ${array.values[fractional]} of sample ${fractional} is not an integer class index`);
  }
  return array.values instanceof Int32Array ? array.values : Int32Array.from(array.values);
}

async function loadFile(file: string): Promise<RawData> {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.npz') {
    const arrays = parseNpz(await readBytes(file), file);
    const x = arrays.get('x');
    const y = arrays.get('y');
    if (x === undefined || y === undefined) {
      throw new InputError(file, `an .npz data set needs arrays "x" and "y" (it has: ${[...arrays.keys()].join(', ') || 'none'})`);
    }
    if (x.shape.length === 0) throw new InputError(file, 'x must have a sample dimension');
    return { format: 'npz', x: x.values, owned: false, y: labelsOf(y, `${file}:y.npy`), sampleShape: x.shape.slice(1) };
  }
  if (extension === '.csv') {
    const { x, y, features } = parseCsv(new TextDecoder().decode(await readBytes(file)), file);
    return { format: 'csv', x, owned: true, y, sampleShape: [features] };
  }
  throw new InputError(file, 'unknown data format (expected .npz, .csv, a folder of IDX files, or a folder of class folders of images)');
}

async function loadFolder(folder: string): Promise<RawData> {
  const entries = (await readdir(folder)).sort();
  const idxFiles = entries.filter((entry) => /(-|\.)idx\d-ubyte(\.gz)?$|\.idx(\.gz)?$/.test(entry));
  if (idxFiles.length === 0) {
    const images = await readImageFolder(folder);
    return { format: 'images', x: images.x, owned: true, y: images.y, sampleShape: images.sampleShape };
  }
  const arrays = await Promise.all(
    idxFiles.map(async (entry) => {
      const file = path.join(folder, entry);
      let bytes = await readBytes(file);
      if (entry.endsWith('.gz')) {
        try {
          bytes = gunzipSync(bytes);
        } catch (error) {
          throw new InputError(file, `cannot gunzip: ${(error as Error).message}`, { cause: error });
        }
      }
      return { file, array: parseIdx(bytes, file) };
    }),
  );
  const labels = arrays.filter(({ array }) => array.shape.length === 1);
  const images = arrays.filter(({ array }) => array.shape.length > 1);
  if (labels.length !== 1 || images.length !== 1) {
    throw new InputError(folder, `an IDX data set is one images file and one labels file; found ${images.length} and ${labels.length} (${idxFiles.join(', ')})`);
  }
  const [{ file: labelFile, array: labelArray }] = labels as [{ file: string; array: NumericArray }];
  const [{ array: imageArray }] = images as [{ file: string; array: NumericArray }];
  return { format: 'idx', x: imageArray.values, owned: false, y: labelsOf(labelArray, labelFile), sampleShape: imageArray.shape.slice(1) };
}

/** dataset.json inside a data folder, or beside a data file (`<name>.dataset.json` first). */
async function readPreprocessing(target: string, isFolder: boolean): Promise<Preprocessing> {
  const candidates = isFolder
    ? [path.join(target, DATASET_JSON)]
    : [path.join(path.dirname(target), `${path.basename(target).replace(/\.[^.]+$/, '')}.${DATASET_JSON}`), path.join(path.dirname(target), DATASET_JSON)];
  for (const file of candidates) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new InputError(file, `not valid JSON (${(error as Error).message})`, { cause: error });
    }
    const parsed = preprocessingSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new InputError(file, `${issue.path.join('.') || 'top level'}: ${issue.message} (allowed keys: scale, offset, description)`);
    }
    return parsed.data;
  }
  return {};
}
