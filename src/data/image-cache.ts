import { createHash } from 'node:crypto';
import { mkdir, open, readFile, rename, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { cacheFile } from '../checkpoint/hash.js';
import { InputError, throwIfAborted } from '../errors.js';
import type { ProgressListener } from '../progress.js';
import { readImage, type DecodedImage, type ImageListing, type ImageSteps } from './images.js';

/**
 * An image folder decoded once into a file of bytes (height-width-channels, sample after sample),
 * so that evaluations read batches instead of decoding again and never hold the whole set in memory.
 * Bytes suffice: decoding, resizing and cropping give bytes, and the value steps (scale, mean, std)
 * are applied per batch, so changing them does not rebuild the cache.
 */
export interface ImageCache {
  file: string;
  bytes: number;
  /** hit: read from an earlier run; built: decoded by this one. */
  state: 'hit' | 'built';
  n: number;
  /** [height, width, channels] of every cached sample. */
  shape: [number, number, number];
  /** Every image had R = G = B. */
  grey: boolean;
  /** Samples [start, start + count) as stored. */
  read(start: number, count: number): Promise<Uint8Array>;
}

const CACHE_VERSION = 1;

interface CacheMeta {
  version: number;
  n: number;
  shape: [number, number, number];
  grey: boolean;
}

/** Where decoded data sets live: beside the hash cache, $XDG_CACHE_HOME/model-soup/data. */
export function dataCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(path.dirname(cacheFile(env)), 'data');
}

/** The cache key: every file's name, size and mtime, and the image steps; any change is a different file. */
export function imageCacheKey(folder: string, listing: ImageListing, steps: ImageSteps): string {
  const hash = createHash('sha256');
  const { channels, resize, crop } = steps;
  hash.update(
    JSON.stringify({
      version: CACHE_VERSION,
      folder: path.resolve(folder),
      channels: channels ?? 'auto',
      resize,
      interpolation: resize === undefined ? undefined : (steps.interpolation ?? 'bilinear'),
      crop,
    }),
  );
  for (const entry of listing.files) hash.update(`\n${path.relative(folder, entry.file)}\t${entry.label}\t${entry.size}\t${entry.mtimeMs}`);
  return hash.digest('hex').slice(0, 32);
}

export interface ImageCacheOptions {
  /** Folder for cache files; default dataCacheDir(). */
  cacheDir?: string | undefined;
  onProgress?: ProgressListener | undefined;
  signal?: AbortSignal | undefined;
}

/** Opens the cache of an image folder with these steps, decoding the folder first when no valid cache exists. */
export async function openImageCache(folder: string, listing: ImageListing, steps: ImageSteps, options: ImageCacheOptions = {}): Promise<ImageCache> {
  const key = imageCacheKey(folder, listing, steps);
  const dir = await writableDir(options.cacheDir ?? dataCacheDir());
  const file = path.join(dir, `${key}.u8`);
  const metaFile = `${file}.json`;
  let meta = await readMeta(metaFile, file);
  let state: ImageCache['state'] = 'hit';
  if (meta === undefined || meta.n !== listing.files.length) {
    meta = await buildCache(file, listing, steps, options);
    await writeFile(metaFile, JSON.stringify(meta));
    state = 'built';
  }
  const [height, width, channels] = meta.shape;
  const sampleBytes = height * width * channels;
  return {
    file,
    bytes: meta.n * sampleBytes,
    state,
    n: meta.n,
    shape: meta.shape,
    grey: meta.grey,
    read: (start, count) => readRange(file, start * sampleBytes, count * sampleBytes),
  };
}

async function writableDir(dir: string): Promise<string> {
  try {
    await mkdir(dir, { recursive: true });
    return dir;
  } catch {
    // A read-only home still gets a cache for this run.
    const fallback = path.join(tmpdir(), `model-soup-data-${process.getuid?.() ?? 'user'}`);
    await mkdir(fallback, { recursive: true });
    return fallback;
  }
}

async function readMeta(metaFile: string, file: string): Promise<CacheMeta | undefined> {
  try {
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as CacheMeta;
    const [height, width, channels] = meta.shape;
    if (meta.version !== CACHE_VERSION || (await stat(file)).size !== meta.n * height * width * channels) return undefined;
    return meta;
  } catch {
    return undefined;
  }
}

async function readRange(file: string, position: number, length: number): Promise<Uint8Array> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(file, 'r');
    const out = new Uint8Array(length);
    const { bytesRead } = await handle.read(out, 0, length, position);
    if (bytesRead !== length) throw new Error(`the file ends after ${position + bytesRead} bytes`);
    return out;
  } catch (error) {
    throw new InputError(file, `the decoded-data cache cannot be read (${(error as Error).message})`, {
      hint: 'run the command again: a missing cache is rebuilt',
      cause: error,
    });
  } finally {
    await handle?.close();
  }
}

/** Images decoded at once: enough to keep every core busy while one result is written. */
const DECODE_CONCURRENCY = Math.max(2, Math.min(8, availableParallelism() * 2));
/** Decoded pixels in flight at once: a 4096 x 4096 resize holds about 200 MB per image while it runs. */
const DECODE_BUDGET_BYTES = 512 * 1024 * 1024;
const PROGRESS_INTERVAL_MS = 100;

/** Fewer images at once when each is large once resized, so memory stays bounded whatever the cores. */
function decodeConcurrency(steps: ImageSteps): number {
  const side = Math.max(steps.resize ?? 0, steps.crop ?? 0);
  if (side === 0) return DECODE_CONCURRENCY;
  // Decoded, resized (up to twice as long as wide) and cropped RGB copies of one image.
  const perImage = side * side * 3 * 4;
  return Math.max(1, Math.min(DECODE_CONCURRENCY, Math.floor(DECODE_BUDGET_BYTES / perImage)));
}
const WRITE_BUFFER_BYTES = 1 << 20;

async function buildCache(file: string, listing: ImageListing, steps: ImageSteps, options: ImageCacheOptions): Promise<CacheMeta> {
  const { files } = listing;
  const temp = `${file}.${process.pid}.partial`;
  const handle = await open(temp, 'w');
  const pending: Promise<DecodedImage>[] = [];
  let next = 0;
  const concurrency = decodeConcurrency(steps);
  const launch = (): void => {
    while (pending.length < concurrency && next < files.length) {
      const decoding = readImage(files[next++]!.file, steps);
      // Failures are reported when their turn comes; until then they must not count as unhandled.
      decoding.catch(() => {});
      pending.push(decoding);
    }
  };
  let first: { image: DecodedImage; file: string } | undefined;
  let grey = true;
  let lastReport = 0;
  // Small images are written a megabyte at a time rather than one write each.
  const buffer = new Uint8Array(WRITE_BUFFER_BYTES);
  let buffered = 0;
  try {
    for (let i = 0; i < files.length; i++) {
      throwIfAborted(options.signal);
      launch();
      const image = await pending.shift()!;
      const { file: source } = files[i]!;
      first ??= { image, file: source };
      if (image.width !== first.image.width || image.height !== first.image.height) {
        const resized = steps.resize !== undefined;
        throw new InputError(
          source,
          `image is ${image.width}x${image.height}${resized ? ' after resizing' : ''}, but ${first.file} is ${first.image.width}x${first.image.height}; all images must have one size`,
          {
            hint: resized ? 'add --crop to cut every image to one size' : 'resize them with --resize and --crop (or --preprocess imagenet)',
          },
        );
      }
      grey &&= image.grey;
      if (buffered + image.pixels.length > WRITE_BUFFER_BYTES) {
        await handle.write(buffer.subarray(0, buffered));
        buffered = 0;
      }
      if (image.pixels.length > WRITE_BUFFER_BYTES) {
        await handle.write(image.pixels);
      } else {
        buffer.set(image.pixels, buffered);
        buffered += image.pixels.length;
      }
      const now = performance.now();
      if (now - lastReport >= PROGRESS_INTERVAL_MS || i === files.length - 1) {
        lastReport = now;
        options.onProgress?.({ kind: 'decode', done: i + 1, total: files.length });
      }
    }
    await handle.write(buffer.subarray(0, buffered));
    await handle.close();
    await rename(temp, file);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temp, { force: true });
    await Promise.allSettled(pending);
    throw error;
  }
  const { width, height, channels } = first!.image;
  return { version: CACHE_VERSION, n: files.length, shape: [height, width, channels], grey: grey && channels === 3 && steps.channels === undefined };
}
