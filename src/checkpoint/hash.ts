import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ExitCode, InputError, SoupError, describeFsError, throwIfAborted } from '../errors.js';
import type { Checkpoint } from './types.js';

export async function sha256File(file: string, signal?: AbortSignal): Promise<string> {
  const hash = createHash('sha256');
  try {
    for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20, signal })) hash.update(chunk as Buffer);
  } catch (error) {
    throwIfAborted(signal);
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  }
  return hash.digest('hex');
}

/** Where hashes are remembered between runs: $XDG_CACHE_HOME/model-soup, else ~/.cache/model-soup. */
export function cacheFile(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME !== undefined && env.XDG_CACHE_HOME !== '' ? env.XDG_CACHE_HOME : path.join(homedir(), '.cache');
  return path.join(base, 'model-soup', 'sha256-v1.json');
}

/**
 * A file's identity for the cache: any write changes its ctime (which no tool can set back), so an
 * entry with the same device, inode, size, mtime and ctime is the same content.
 */
async function identity(file: string): Promise<string> {
  const info = await stat(file, { bigint: true });
  return `${info.dev}:${info.ino}:${info.size}:${info.mtimeNs}:${info.ctimeNs}`;
}

type Cache = Record<string, { id: string; sha256: string }>;

async function readCache(): Promise<Cache> {
  try {
    return JSON.parse(await readFile(cacheFile(), 'utf8')) as Cache;
  } catch {
    return {};
  }
}

/** Best effort: a cache that cannot be written only costs the next run some hashing. */
async function writeCache(cache: Cache): Promise<void> {
  const file = cacheFile();
  const temp = `${file}.${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(temp, JSON.stringify(cache));
    await rename(temp, file);
  } catch {
    // Read-only home, full disk: carry on without the cache.
  }
}

/**
 * SHA-256 of files, from the cache where a file is unchanged, otherwise computed in a worker thread
 * so the caller can keep the main thread busy (averaging) meanwhile. Returns hashes by file path.
 */
export async function hashFiles(files: readonly string[], signal?: AbortSignal): Promise<Map<string, string>> {
  const cache = await readCache();
  const hashes = new Map<string, string>();
  const ids = new Map<string, string>();
  const missing: string[] = [];
  for (const file of new Set(files)) {
    const key = path.resolve(file);
    const id = await identity(file).catch((error: unknown) => {
      throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
    });
    ids.set(file, id);
    const cached = cache[key];
    if (cached?.id === id) hashes.set(file, cached.sha256);
    else missing.push(file);
  }
  if (missing.length === 0) return hashes;
  const computed = await hashInWorker(missing, signal);
  for (const [file, sha256] of computed) {
    hashes.set(file, sha256);
    cache[path.resolve(file)] = { id: ids.get(file)!, sha256 };
  }
  await writeCache(cache);
  return hashes;
}

function hashInWorker(files: string[], signal?: AbortSignal): Promise<Map<string, string>> {
  throwIfAborted(signal);
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./hash-worker.js', import.meta.url), { workerData: files });
    const results = new Map<string, string>();
    const onAbort = (): void => {
      void worker.terminate();
      reject(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (message: { file: string; sha256?: string; error?: string }) => {
      if (message.error !== undefined) {
        signal?.removeEventListener('abort', onAbort);
        void worker.terminate();
        reject(new SoupError(message.error, ExitCode.badInput));
        return;
      }
      results.set(message.file, message.sha256!);
      if (results.size === files.length) {
        signal?.removeEventListener('abort', onAbort);
        void worker.terminate();
        resolve(results);
      }
    });
    worker.on('error', (error) => reject(error));
  });
}

/**
 * SHA-256 of every file of a checkpoint, keyed by its path relative to the checkpoint (its base name
 * for a single file), so that `sha256sum` on the user's side can check a recipe's ingredients.
 */
export function checkpointHashes(checkpoint: Checkpoint, hashes: ReadonlyMap<string, string>): Record<string, string> {
  const single = checkpoint.files.length === 1 && checkpoint.files[0] === checkpoint.path;
  const out: Record<string, string> = {};
  for (const file of checkpoint.files) out[single ? path.basename(file) : path.relative(checkpoint.path, file)] = hashes.get(file)!;
  return out;
}
