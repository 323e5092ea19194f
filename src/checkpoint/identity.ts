import { stat } from 'node:fs/promises';
import { InputError } from '../errors.js';
import type { Checkpoint } from './types.js';

/** What changes when a file is rewritten or replaced: its size, modification time and inode. */
interface Identity {
  size: number;
  mtimeNs: bigint;
  ino: number;
}

/** Each opened checkpoint's files as they were when it was opened. */
const opened = new WeakMap<Checkpoint, Map<string, Identity>>();

async function identityOf(file: string): Promise<Identity | undefined> {
  const info = await stat(file, { bigint: true }).catch(() => undefined);
  return info === undefined ? undefined : { size: Number(info.size), mtimeNs: info.mtimeNs, ino: Number(info.ino) };
}

/** Notes the files of opened checkpoints, so a rewrite during the soup is caught before the output is published. */
export async function rememberFiles(checkpoints: readonly Checkpoint[]): Promise<void> {
  for (const checkpoint of checkpoints) {
    const files = new Map<string, Identity>();
    for (const file of checkpoint.files) {
      const identity = await identityOf(file);
      if (identity !== undefined) files.set(file, identity);
    }
    opened.set(checkpoint, files);
  }
}

/**
 * Fails when a file changed since it was opened: the soup would mix bytes of two versions and its
 * recipe would record the hash of a file that was never (wholly) used.
 */
export async function checkUnchanged(checkpoints: readonly Checkpoint[]): Promise<void> {
  for (const [file, before] of checkpoints.flatMap((checkpoint) => [...(opened.get(checkpoint) ?? [])])) {
    const now = await identityOf(file);
    if (now === undefined || now.size !== before.size || now.mtimeNs !== before.mtimeNs || now.ino !== before.ino) {
      throw new InputError(file, 'changed while soup was reading it (size, modification time or inode differ); nothing was written', {
        hint: 'run again once the file is no longer being written',
      });
    }
  }
}
