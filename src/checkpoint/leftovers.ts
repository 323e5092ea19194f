import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Temporary files carry the writing process's id, so that a later run can tell the leftovers of a
 * killed run (whose process is gone) from files another soup is still writing.
 */
export function pidTag(pid = process.pid): string {
  return `${pid}-${randomBytes(4).toString('hex')}`;
}

/** The temporary name beside `final` that a writer fills before renaming it into place. */
export function tempPathFor(final: string): string {
  return path.join(path.dirname(final), `.${path.basename(final)}.tmp-${pidTag()}`);
}

/** Whether a process with this id still runs (EPERM: it does, under another user). */
export function isProcessAlive(pid: number): boolean {
  if (pid <= 0) return false;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const escapeRegExp = (text: string): string => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The leftovers of writing `final`: `.NAME.tmp-PID-HEX` and what hangs off it (`.old`, `.data`). */
export function outputTempPattern(final: string): RegExp {
  return new RegExp(`^\\.${escapeRegExp(path.basename(final))}\\.tmp-(\\d+)-[0-9a-f]{8}(\\..*)?$`);
}

/** The candidates --eval-cmd writes, `soup-candidate-PID-HEX[.suffix]`, and their hidden temporary files. */
export const CANDIDATE_PATTERN = /^\.?soup-candidate-(\d+)-[0-9a-f]{8}(\..*)?$/;

/**
 * Removes the entries of `folder` that match `pattern` (whose first group is a process id) and were
 * left by a process that is gone. Returns what was removed, for the command line to say.
 */
export async function removeDeadLeftovers(folder: string, pattern: RegExp, isAlive: (pid: number) => boolean = isProcessAlive): Promise<string[]> {
  const entries = await readdir(folder).catch(() => [] as string[]);
  const removed: string[] = [];
  for (const entry of entries.sort()) {
    const pid = Number(pattern.exec(entry)?.[1] ?? Number.NaN);
    if (!Number.isSafeInteger(pid) || isAlive(pid)) continue;
    const file = path.join(folder, entry);
    // Another user's leftover in a shared /tmp is theirs to remove.
    if (
      await rm(file, { recursive: true, force: true }).then(
        () => true,
        () => false,
      )
    )
      removed.push(file);
  }
  return removed;
}

/** One line per leftover removed, for the command line's warnings. */
export function describeRemoved(removed: readonly string[]): string[] {
  return removed.map((file) => `removed ${file}, left by an earlier soup that was killed`);
}

/** Files being written now, removed if the process exits before it renames or removes them. */
const inFlight = new Set<string>();
let hooked = false;

/**
 * Removes `file` (a file or folder) if the process exits while it is registered: a second Ctrl-C,
 * or an exit with work still running, leaves no partial file behind. Returns the unregister function.
 */
export function removeAtExit(file: string): () => void {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const pending of inFlight) rmSync(pending, { recursive: true, force: true });
    });
  }
  inFlight.add(file);
  return () => inFlight.delete(file);
}
