import { closeSync, openSync, readSync } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { InputError, describeFsError } from '../errors.js';
import { yieldIfDue } from '../event-loop.js';

export interface FilePart {
  path: string;
  size: number;
}

/**
 * Reads byte ranges of one file, or of several files taken back to back (TF.js shards), keeping at
 * most one file open at a time so that many ingredients never exhaust file descriptors.
 */
export class RangeReader {
  private fd: number | undefined;
  private fdPart = -1;
  private readonly starts: number[] = [];
  readonly size: number;

  constructor(private readonly parts: readonly FilePart[]) {
    let start = 0;
    for (const part of parts) {
      this.starts.push(start);
      start += part.size;
    }
    this.size = start;
  }

  /** Reads exactly `length` bytes at `offset` into a fresh, aligned array. */
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.readInto(offset, new Uint8Array(length));
  }

  /**
   * Fills `out` with the bytes at `offset`: streaming code reuses its buffers instead of allocating.
   *
   * Opening and reading are synchronous on purpose. Checkpoints are read from the page cache at
   * about 10 GB/s, and handing each call to libuv's thread pool costs a thread wake-up (about 65 µs
   * on our 2-core VMs, more than copying a 512 KB chunk); measured on a soup of 8 × 69 MB, the
   * mixing took 200 ms with async reads and 90 ms with these. What waits meanwhile is only this
   * process's event loop, which gets a turn here at least every 10 ms (yieldIfDue).
   */
  async readInto(offset: number, out: Uint8Array): Promise<Uint8Array> {
    await yieldIfDue();
    const length = out.byteLength;
    let done = 0;
    while (done < length) {
      const at = offset + done;
      const partIndex = this.partAt(at);
      const part = this.parts[partIndex]!;
      const within = at - this.starts[partIndex]!;
      const take = Math.min(length - done, part.size - within);
      const fd = this.fdFor(partIndex);
      let got = 0;
      while (got < take) {
        let bytesRead: number;
        try {
          bytesRead = readSync(fd, out, done + got, take - got, within + got);
        } catch (error) {
          throw new InputError(part.path, `cannot read: ${describeFsError(error)}`, { cause: error });
        }
        if (bytesRead === 0) throw new InputError(part.path, 'file is shorter than when it was opened (truncated while reading?)');
        got += bytesRead;
      }
      done += take;
    }
    return out;
  }

  async close(): Promise<void> {
    this.closeFd();
  }

  private closeFd(): void {
    const fd = this.fd;
    this.fd = undefined;
    this.fdPart = -1;
    if (fd !== undefined) closeSync(fd);
  }

  private partAt(offset: number): number {
    if (offset < 0 || offset >= this.size) throw new RangeError(`offset ${offset} outside 0..${this.size}`);
    let lo = 0;
    let hi = this.parts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    // Skip empty parts that share a start offset with the next one.
    while (this.parts[lo]!.size === 0) lo++;
    return lo;
  }

  private fdFor(partIndex: number): number {
    if (this.fd !== undefined && this.fdPart === partIndex) return this.fd;
    this.closeFd();
    const part = this.parts[partIndex]!;
    try {
      this.fd = openSync(part.path, 'r');
    } catch (error) {
      throw new InputError(part.path, `cannot open: ${describeFsError(error)}`, { cause: error });
    }
    this.fdPart = partIndex;
    return this.fd;
  }
}

/** Size of a regular file, or a clear error naming it. */
export async function fileSize(file: string): Promise<number> {
  const info = await stat(file).catch((error: unknown) => {
    throw new InputError(file, describeFsError(error), { cause: error });
  });
  if (!info.isFile()) throw new InputError(file, 'not a regular file');
  return info.size;
}

/** Reads a whole small file (a header, a manifest). */
export async function readSmallFile(file: string, limit: number): Promise<Uint8Array> {
  const size = await fileSize(file);
  if (size > limit) throw new InputError(file, `file is ${size} bytes, more than the ${limit} allowed for it`);
  const reader = new RangeReader([{ path: file, size }]);
  try {
    return size === 0 ? new Uint8Array(0) : await reader.read(0, size);
  } finally {
    await reader.close();
  }
}

/**
 * Resolves a path that a manifest names (a shard, a weight_map entry) and refuses one that leaves the
 * checkpoint's folder, by `..`, an absolute path or a symlink: a downloaded checkpoint must not make
 * us read arbitrary files.
 */
export async function resolveInside(folder: string, relative: string, manifest: string): Promise<string> {
  if (relative === '' || path.isAbsolute(relative) || relative.split(/[\\/]/).includes('..')) {
    throw new InputError(manifest, `path "${relative}" points outside the checkpoint folder`);
  }
  const resolved = path.join(folder, relative);
  const [realFolder, realFile] = await Promise.all([
    realpath(folder).catch((error: unknown) => {
      throw new InputError(manifest, `its folder cannot be opened: ${describeFsError(error)}`, { cause: error });
    }),
    realpath(resolved).catch((error: unknown) => {
      throw new InputError(manifest, `names "${relative}", which cannot be opened: ${describeFsError(error)}`, { cause: error });
    }),
  ]);
  if (!(await isAllowedTarget(folder, realFolder, realFile))) {
    throw new InputError(manifest, `path "${relative}" is a link that points outside the checkpoint folder`);
  }
  return resolved;
}

const within = (file: string, folder: string): boolean => file === folder || file.startsWith(folder + path.sep);

/**
 * Where a file of `folder` may really be: inside the folder, or, for a Hugging Face cache snapshot
 * (`models--org--name/snapshots/<commit>/`), in the blobs of the same `models--org--name` folder,
 * which is where the cache keeps every file the snapshot links to.
 */
async function isAllowedTarget(folder: string, realFolder: string, realFile: string): Promise<boolean> {
  if (within(realFile, realFolder)) return true;
  for (const spelling of new Set([path.resolve(folder), realFolder])) {
    const snapshot = /^(.*[\\/]models--[^\\/]+)[\\/]snapshots[\\/][^\\/]+$/.exec(spelling);
    if (snapshot === null) continue;
    const blobs = await realpath(path.join(snapshot[1]!, 'blobs')).catch(() => undefined);
    if (blobs !== undefined && within(realFile, blobs)) return true;
  }
  return false;
}

/**
 * Refuses a file of an ingredient's folder (a config, a tokenizer, an index) that is a link to
 * somewhere outside it: soup would copy /etc/shadow or a private key into a soup bound for the Hub.
 */
export async function refuseLinkOutside(folder: string, file: string): Promise<void> {
  const [realFolder, realFile] = await Promise.all([realpath(folder).catch(() => undefined), realpath(file).catch(() => undefined)]);
  if (realFolder === undefined || realFile === undefined) return; // A missing file is reported by whoever opens it.
  if (!(await isAllowedTarget(folder, realFolder, realFile))) {
    throw new InputError(file, 'is a link that points outside the checkpoint folder; soup reads and copies nothing from outside an ingredient', {
      hint: 'copy the file into the folder if it belongs to the model',
    });
  }
}

/** Decodes UTF-8 strictly, so that a corrupted header is an error, not replacement characters. */
export function decodeUtf8(bytes: Uint8Array, file: string, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch (error) {
    throw new InputError(file, `${what} is not valid UTF-8`, { cause: error });
  }
}

/** Parses JSON, or throws an error that names the file and what it was supposed to hold. */
export function parseJson(text: string, file: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InputError(file, `${what} is not valid JSON (${(error as Error).message})`, { cause: error });
  }
}
