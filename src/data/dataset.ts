import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { InputError, UsageError, describeFsError } from '../errors.js';
import type { ProgressListener } from '../progress.js';
import { parseCsv } from './csv.js';
import { parseIdx } from './idx.js';
import { openImageCache, type ImageCache } from './image-cache.js';
import { listImageFolder } from './images.js';
import { arrangeSamples, fitToInput, guessSampleLayout, imageDims, type InputFit, type SampleLayout } from './layout.js';
import type { NumericArray } from './npy.js';
import { openNpzArrays } from './npz.js';
import {
  channelAffine,
  describePreprocessing,
  preprocessingSchema,
  resamples,
  resolvePreprocessing,
  type ChannelAffine,
  type Preprocessing,
} from './preprocess.js';

export type { Preprocessing } from './preprocess.js';
export type { InputFit } from './layout.js';

/** One batch of samples, preprocessed and laid out for a model input. */
export interface Batch {
  /** count samples back to back, in the layout of the InputFit asked for. */
  x: Float32Array;
  y: Int32Array;
  /** Index of the batch's first sample in the data set. */
  start: number;
  count: number;
}

/** How to open a data set again, e.g. in a worker thread: plain data, no handles. */
export interface DatasetSource {
  target: string;
  flags: Preprocessing;
  cacheDir?: string | undefined;
  inMemoryBytes?: number | undefined;
}

/**
 * A labelled data set. Labels are in memory; samples are read in batches, from memory (npz, IDX, CSV
 * of modest size) or from disk (an image folder's decoded cache, a large npz), so a data set may be
 * larger than memory. This is the seam every evaluator uses:
 *   const fit = dataset.fitTo(modelInputDims);           // layout check, or an error naming the shapes
 *   for await (const { x, y, count } of dataset.batches(256, fit)) ...
 */
export interface Dataset {
  /** Short name for reports: the file name without extension, or the folder name. */
  name: string;
  path: string;
  format: 'npz' | 'idx' | 'csv' | 'images';
  n: number;
  /** Shape of one sample as stored (after image steps), e.g. [28, 28] or [224, 224, 3]. */
  sampleShape: number[];
  /** Order of a stored sample's values: image folders are height-width-channels. */
  sampleLayout: SampleLayout;
  y: Int32Array;
  /** Class names of an image folder, by label. */
  classes?: string[] | undefined;
  /** The steps in force (flags over dataset.json). */
  preprocessing: Preprocessing;
  scale: number;
  offset: number;
  /** An image folder's decoded-data cache. */
  cache?: { file: string; bytes: number; state: 'hit' | 'built' } | undefined;
  /** Samples are read from disk batch by batch rather than held in memory. */
  streamed: boolean;
  source: DatasetSource;
  /**
   * How samples map to a model input [N, ...modelDims] (unknown dimensions -1): NCHW or NHWC from the
   * model's shape (the preprocessing's `layout` settles ambiguous ones), flat reshape only for [N, K].
   */
  fitTo(modelDims: readonly number[]): InputFit;
  /** Samples [start, start + count), preprocessed, laid out as `fit` says (as stored when omitted). */
  read(start: number, count: number, fit?: InputFit): Promise<Float32Array>;
  /** Every sample in order, batchSize at a time. */
  batches(batchSize: number, fit?: InputFit): AsyncGenerator<Batch>;
}

/** Stored samples of a data set, before the value steps. */
export interface SampleStore {
  /** Values of samples [start, start + count) as stored, beginning at `values[at]`. */
  read(start: number, count: number): Promise<{ values: ArrayLike<number>; at: number }>;
}

/**
 * Model inputs up to this many bytes (as float32) are laid out once and kept by an evaluator; larger
 * data is streamed from the data set batch by batch on every run. 256 MiB: about 85,000 MNIST
 * images, or 1,300 ImageNet crops.
 */
export const PRELOAD_BYTES = 256 * 1024 * 1024;

export const DATASET_JSON = 'dataset.json';

export interface LoadOptions {
  /** Folder for decoded image caches; default $XDG_CACHE_HOME/model-soup/data. */
  cacheDir?: string | undefined;
  onProgress?: ProgressListener | undefined;
  signal?: AbortSignal | undefined;
  /** An .npz file larger than this is read batch by batch from disk (default 512 MiB). */
  inMemoryBytes?: number | undefined;
}

const IN_MEMORY_BYTES = 512 * 1024 * 1024;

/** Class indices are below this: ImageNet-21k has 21,841 classes. */
export const MAX_CLASSES = 1_000_000;

/** Reading a FIFO or a device blocks (for ever, with nothing writing): data files must be regular files. */
const NOT_REGULAR = 'is not a regular file (a FIFO, socket or device named like a data file)';

/**
 * Reads validation or test data: an .npz with arrays x and y, a folder of IDX files (MNIST layout,
 * raw or .gz), a CSV with a label column, or a folder of class sub-folders of images. Preprocessing
 * comes from the flags over a dataset.json beside the data (see resolvePreprocessing).
 */
export async function loadDataset(target: string, flags: Preprocessing = {}, options: LoadOptions = {}): Promise<Dataset> {
  const info = await stat(target).catch((error: unknown) => {
    throw new InputError(target, describeFsError(error), { cause: error });
  });
  const folder = info.isDirectory();
  if (!folder && !info.isFile()) throw new InputError(target, NOT_REGULAR);
  const steps = resolvePreprocessing(await readPreprocessing(target, folder), flags);
  const raw = folder ? await loadFolder(target, steps, options) : await loadFile(target, options.inMemoryBytes ?? IN_MEMORY_BYTES);
  if (raw.format !== 'images' && (resamples(steps) || steps.channels !== undefined)) {
    const keys = (['resize', 'crop', 'channels'] as const).filter((key) => steps[key] !== undefined);
    throw new UsageError(`${target}: ${keys.join(', ')} apply to folders of images; ${raw.format} data is used at its stored size`, {
      hint: 'leave them out for this data, or use a preset only for image folders',
    });
  }
  const n = raw.y.length;
  if (n === 0) throw new InputError(target, 'the data set is empty');
  if (raw.count !== n) throw new InputError(target, `${raw.count} samples but ${n} labels; they must be as many`);
  const negative = raw.y.findIndex((label) => label < 0);
  if (negative >= 0) throw new InputError(target, `label ${raw.y[negative]} of sample ${negative} is negative`);
  // Labels index classes (counts, class lists, a model's outputs): one huge label would size them all.
  const huge = raw.y.findIndex((label) => label >= MAX_CLASSES);
  if (huge >= 0) throw new InputError(target, `label ${raw.y[huge]} of sample ${huge} is beyond the ${MAX_CLASSES} classes soup handles`);
  const name = folder ? path.basename(path.resolve(target)) : path.basename(target).replace(/\.[^.]+$/, '');
  return new StoredDataset({
    name,
    path: target,
    format: raw.format,
    n,
    sampleShape: raw.sampleShape,
    sampleLayout: raw.sampleLayout,
    y: raw.y,
    classes: raw.classes,
    preprocessing: steps,
    cache: raw.cache === undefined ? undefined : { file: raw.cache.file, bytes: raw.cache.bytes, state: raw.cache.state },
    streamed: raw.streamed,
    source: { target, flags, cacheDir: options.cacheDir, inMemoryBytes: options.inMemoryBytes },
    store: raw.store,
  });
}

/** A data set from arrays in memory (tests, and callers that build data themselves). */
export function datasetFromArrays(fields: {
  name: string;
  path?: string;
  x: ArrayLike<number>;
  y: Int32Array;
  sampleShape: number[];
  sampleLayout?: SampleLayout;
  preprocessing?: Preprocessing;
}): Dataset {
  const store = memoryStore(fields.x, fields.sampleShape);
  return new StoredDataset({
    name: fields.name,
    path: fields.path ?? fields.name,
    format: 'npz',
    n: fields.y.length,
    sampleShape: fields.sampleShape,
    sampleLayout: fields.sampleLayout ?? guessSampleLayout(fields.sampleShape),
    y: fields.y,
    preprocessing: fields.preprocessing ?? {},
    streamed: false,
    source: { target: fields.name, flags: fields.preprocessing ?? {} },
    store,
  });
}

type DatasetFields = Omit<Dataset, 'fitTo' | 'read' | 'batches' | 'scale' | 'offset'> & { store: SampleStore };

class StoredDataset implements Dataset {
  readonly name: string;
  readonly path: string;
  readonly format: Dataset['format'];
  readonly n: number;
  readonly sampleShape: number[];
  readonly sampleLayout: SampleLayout;
  readonly y: Int32Array;
  readonly classes: string[] | undefined;
  readonly preprocessing: Preprocessing;
  readonly cache: Dataset['cache'];
  readonly streamed: boolean;
  readonly source: DatasetSource;
  private readonly store: SampleStore;
  private readonly affine: ChannelAffine;
  private readonly sampleSize: number;

  constructor(fields: DatasetFields) {
    this.name = fields.name;
    this.path = fields.path;
    this.format = fields.format;
    this.n = fields.n;
    this.sampleShape = fields.sampleShape;
    this.sampleLayout = fields.sampleLayout;
    this.y = fields.y;
    this.classes = fields.classes;
    this.preprocessing = fields.preprocessing;
    this.cache = fields.cache;
    this.streamed = fields.streamed;
    this.source = fields.source;
    this.store = fields.store;
    this.sampleSize = fields.sampleShape.reduce((a, b) => a * b, 1);
    const channels = imageDims(this.sample)?.channels ?? 1;
    this.affine = wrapUsage(this.path, () => channelAffine(fields.preprocessing, channels, this.path));
  }

  get scale(): number {
    return this.preprocessing.scale ?? 1;
  }

  get offset(): number {
    return this.preprocessing.offset ?? 0;
  }

  private get sample() {
    return { shape: this.sampleShape, layout: this.sampleLayout };
  }

  fitTo(modelDims: readonly number[]): InputFit {
    return wrapUsage(this.path, () => fitToInput(this.sample, modelDims, this.preprocessing.layout));
  }

  async read(start: number, count: number, fit?: InputFit): Promise<Float32Array> {
    if (start < 0 || count < 0 || start + count > this.n) throw new RangeError(`samples ${start} to ${start + count} are outside 0 to ${this.n}`);
    const { values, at } = await this.store.read(start, count);
    const out = new Float32Array(count * this.sampleSize);
    const value = values instanceof Uint8Array ? this.byteValue() : this.affine.identity ? (x: number) => x : this.affine.apply;
    arrangeSamples(values, at, count, this.sample, fit ?? { shape: this.sampleShape, layout: 'as stored', transpose: 'none' }, value, out);
    for (let k = 0; k < out.length; k++) if (!Number.isFinite(out[k]!)) throw this.nonFinite(values, at, start, count, k, out[k]!);
    return out;
  }

  /**
   * A NaN or infinite input makes every output, and so the score, meaningless (eval printed "loss: null"
   * with exit 0): name the sample when the data holds it, the settings when preprocessing made it.
   */
  private nonFinite(values: ArrayLike<number>, at: number, start: number, count: number, k: number, value: number): InputError {
    const sample = start + Math.floor(k / Math.max(1, this.sampleSize));
    for (let i = at; i < at + count * this.sampleSize; i++) {
      if (!Number.isFinite(values[i]!)) {
        return new InputError(this.path, `sample ${start + Math.floor((i - at) / this.sampleSize)} holds ${values[i]}; every input must be a finite number`);
      }
    }
    return new InputError(
      this.path,
      `preprocessing (${describePreprocessing(this.preprocessing)}) turns a value of sample ${sample} into ${value}; every input must be a finite number`,
      {
        hint: 'check scale, offset, mean and std (in dataset.json or the flags)',
      },
    );
  }

  private byteTable: Float32Array | undefined;

  /** Bytes (images, uint8 arrays) take every channel's 256 possible values from a table computed once. */
  private byteValue(): (x: number, channel: number) => number {
    const channels = imageDims(this.sample)?.channels ?? 1;
    if (this.byteTable === undefined) {
      this.byteTable = new Float32Array(channels * 256);
      for (let c = 0; c < channels; c++) for (let x = 0; x < 256; x++) this.byteTable[c * 256 + x] = this.affine.apply(x, c);
      const bad = this.byteTable.findIndex((entry) => !Number.isFinite(entry));
      if (bad >= 0) {
        this.byteTable = undefined;
        throw new InputError(
          this.path,
          `preprocessing (${describePreprocessing(this.preprocessing)}) turns the byte value ${bad % 256} into a non-finite number; every input must be a finite number`,
          {
            hint: 'check scale, offset, mean and std (in dataset.json or the flags)',
          },
        );
      }
    }
    const table = this.byteTable;
    return (x, channel) => table[channel * 256 + x]!;
  }

  async *batches(batchSize: number, fit?: InputFit): AsyncGenerator<Batch> {
    for (let start = 0; start < this.n; start += batchSize) {
      const count = Math.min(batchSize, this.n - start);
      yield { x: await this.read(start, count, fit), y: this.y.subarray(start, start + count), start, count };
    }
  }
}

/** Shape problems found while preparing a data set are the data's problem: name its path. */
function wrapUsage<T>(file: string, make: () => T): T {
  try {
    return make();
  } catch (error) {
    if (error instanceof UsageError && !error.message.startsWith(`${file}:`)) {
      throw new InputError(file, error.message, error.hint === undefined ? { cause: error } : { hint: error.hint, cause: error });
    }
    throw error;
  }
}

function memoryStore(values: ArrayLike<number>, sampleShape: number[]): SampleStore {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  return { read: async (start) => ({ values, at: start * size }) };
}

interface RawData {
  format: Dataset['format'];
  store: SampleStore;
  /** Samples in the store. */
  count: number;
  y: Int32Array;
  sampleShape: number[];
  sampleLayout: SampleLayout;
  streamed: boolean;
  classes?: string[];
  cache?: ImageCache;
}

async function readBytes(file: string): Promise<Uint8Array> {
  const info = await stat(file).catch(() => undefined);
  if (info !== undefined && !info.isFile()) throw new InputError(file, NOT_REGULAR);
  return readFile(file).catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
}

export function labelsOf(array: NumericArray, file: string): Int32Array {
  if (array.shape.length !== 1 && !(array.shape.length === 2 && array.shape[1] === 1)) {
    throw new InputError(file, `labels must be a vector of class indices, got shape [${array.shape.join(', ')}]`);
  }
  if (!array.integer) {
    const fractional = Array.prototype.findIndex.call(array.values, (v: number) => !Number.isInteger(v));
    if (fractional >= 0) throw new InputError(file, `label ${array.values[fractional]} of sample ${fractional} is not an integer class index`);
  }
  return array.values instanceof Int32Array ? array.values : Int32Array.from(array.values);
}

function inMemory(format: Dataset['format'], values: ArrayLike<number>, y: Int32Array, sampleShape: number[]): RawData {
  const size = sampleShape.reduce((a, b) => a * b, 1);
  return {
    format,
    store: memoryStore(values, sampleShape),
    count: size === 0 ? 0 : values.length / size,
    y,
    sampleShape,
    sampleLayout: guessSampleLayout(sampleShape),
    streamed: false,
  };
}

async function loadFile(file: string, inMemoryBytes: number): Promise<RawData> {
  const extension = path.extname(file).toLowerCase();
  if (extension === '.npz') {
    const npz = await openNpzArrays(file, inMemoryBytes);
    const x = npz.arrays.get('x');
    const y = npz.arrays.get('y');
    if (x === undefined || y === undefined) {
      throw new InputError(file, `an .npz data set needs arrays "x" and "y" (it has: ${[...npz.arrays.keys()].join(', ') || 'none'})`);
    }
    if (x.shape.length === 0) throw new InputError(file, 'x must have a sample dimension');
    // Checked before y is read: a y far longer than x would only be memory to refuse afterwards.
    if (y.shape[0] !== x.shape[0]) throw new InputError(file, `${x.shape[0]} samples but ${y.shape[0] ?? 0} labels; they must be as many`);
    const labels = labelsOf(await y.readAll(), `${file}:y.npy`);
    const sampleShape = x.shape.slice(1);
    const size = sampleShape.reduce((a, b) => a * b, 1);
    if (!x.large) return inMemory('npz', (await x.readAll()).values, labels, sampleShape);
    return {
      format: 'npz',
      store: { read: async (start, count) => ({ values: await x.readRows(start, count, size), at: 0 }) },
      count: x.shape[0]!,
      y: labels,
      sampleShape,
      sampleLayout: guessSampleLayout(sampleShape),
      streamed: true,
    };
  }
  if (extension === '.csv') {
    const { x, y, features } = parseCsv(new TextDecoder().decode(await readBytes(file)), file);
    return inMemory('csv', x, y, [features]);
  }
  throw new InputError(file, 'unknown data format (expected .npz, .csv, a folder of IDX files, or a folder of class folders of images)');
}

/** Bytes of one (gunzipped) IDX file: MNIST's largest is 47 MB. */
const MAX_IDX_BYTES = 256 * 1024 * 1024;

async function loadFolder(folder: string, steps: Preprocessing, options: LoadOptions): Promise<RawData> {
  const entries = (await readdir(folder)).sort();
  const idxFiles = entries.filter((entry) => /(-|\.)idx\d-ubyte(\.gz)?$|\.idx(\.gz)?$/.test(entry));
  if (idxFiles.length === 0) return loadImageFolder(folder, steps, options);
  const arrays = await Promise.all(
    idxFiles.map(async (entry) => {
      const file = path.join(folder, entry);
      let bytes = await readBytes(file);
      if (entry.endsWith('.gz')) {
        try {
          // An IDX data set is read whole into memory: a small .gz must not inflate without bound.
          bytes = gunzipSync(bytes, { maxOutputLength: MAX_IDX_BYTES });
        } catch (error) {
          const tooLarge = (error as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
          throw new InputError(
            file,
            tooLarge ? `inflates to more than the ${MAX_IDX_BYTES} bytes soup reads from an IDX file` : `cannot gunzip: ${(error as Error).message}`,
            {
              cause: error,
            },
          );
        }
      }
      return { file, array: parseIdx(bytes, file) };
    }),
  );
  const labels = arrays.filter(({ array }) => array.shape.length === 1);
  const images = arrays.filter(({ array }) => array.shape.length > 1);
  if (labels.length !== 1 || images.length !== 1) {
    throw new InputError(
      folder,
      `an IDX data set is one images file and one labels file; found ${images.length} and ${labels.length} (${idxFiles.join(', ')})`,
    );
  }
  const [{ file: labelFile, array: labelArray }] = labels as [{ file: string; array: NumericArray }];
  const [{ array: imageArray }] = images as [{ file: string; array: NumericArray }];
  return inMemory('idx', imageArray.values, labelsOf(labelArray, labelFile), imageArray.shape.slice(1));
}

async function loadImageFolder(folder: string, steps: Preprocessing, options: LoadOptions): Promise<RawData> {
  const listing = await listImageFolder(folder);
  const cache = await openImageCache(folder, listing, steps, options);
  const [height, width, channels] = cache.shape;
  // A folder of grey images, with no channels asked for, gives one channel (as it always has).
  const collapse = cache.grey;
  const sampleShape = [height, width, collapse ? 1 : channels];
  const read = collapse
    ? async (start: number, count: number) => {
        const rgb = await cache.read(start, count);
        const grey = new Uint8Array(rgb.length / 3);
        for (let i = 0; i < grey.length; i++) grey[i] = rgb[3 * i]!;
        return { values: grey, at: 0 };
      }
    : async (start: number, count: number) => ({ values: await cache.read(start, count), at: 0 });
  return {
    format: 'images',
    store: { read },
    count: cache.n,
    y: Int32Array.from(listing.files, (entry) => entry.label),
    sampleShape,
    sampleLayout: 'hwc',
    streamed: true,
    classes: listing.classes,
    cache,
  };
}

/** dataset.json inside a data folder, or beside a data file (`<name>.dataset.json` first). */
async function readPreprocessing(target: string, isFolder: boolean): Promise<Preprocessing> {
  const candidates = isFolder
    ? [path.join(target, DATASET_JSON)]
    : [path.join(path.dirname(target), `${path.basename(target).replace(/\.[^.]+$/, '')}.${DATASET_JSON}`), path.join(path.dirname(target), DATASET_JSON)];
  for (const file of candidates) {
    const info = await stat(file).catch(() => undefined);
    if (info === undefined) continue;
    if (!info.isFile()) throw new InputError(file, NOT_REGULAR);
    const text = await readFile(file, 'utf8').catch((error: unknown) => {
      throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
    });
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (error) {
      throw new InputError(file, `not valid JSON (${(error as Error).message})`, { cause: error });
    }
    const parsed = preprocessingSchema.safeParse(json);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const allowed = Object.keys(preprocessingSchema.shape).join(', ');
      throw new InputError(file, `${issue.path.join('.') || 'top level'}: ${issue.message} (allowed keys: ${allowed})`);
    }
    return parsed.data;
  }
  return {};
}
