import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { InputError, describeFsError, throwIfAborted } from '../errors.js';
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

/**
 * SHA-256 of every file of a checkpoint, keyed by its path relative to the checkpoint (its base name
 * for a single file), so that `sha256sum` on the user's side can check a recipe's ingredients.
 */
export async function hashCheckpoint(checkpoint: Checkpoint, signal?: AbortSignal): Promise<Record<string, string>> {
  const single = checkpoint.files.length === 1 && checkpoint.files[0] === checkpoint.path;
  const hashes: Record<string, string> = {};
  for (const file of checkpoint.files) {
    const key = single ? path.basename(file) : path.relative(checkpoint.path, file);
    hashes[key] = await sha256File(file, signal);
  }
  return hashes;
}
