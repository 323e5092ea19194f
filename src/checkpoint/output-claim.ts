import { unlinkSync } from 'node:fs';
import { link, lstat, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { OutputError, UsageError, describeFsError } from '../errors.js';
import { describeRemoved, isProcessAlive, outputTempPattern, pidTag, removeDeadLeftovers } from './leftovers.js';

/** One finished file or folder renamed into place; what it replaces waits under `${from}.old`. */
export interface Move {
  from: string;
  to: string;
}

/**
 * How an output is replaced: the moves in order (an ONNX model's external data before the model that
 * names it), then the files of the old output that the new one no longer uses (its old data file).
 */
export interface Replacement {
  moves: Move[];
  obsolete: string[];
}

/** The file-system steps of replacing an output, injectable so tests can interrupt each one. */
export interface ReplaceSteps {
  rename(from: string, to: string): Promise<void>;
  remove(target: string): Promise<void>;
}

export const fsSteps: ReplaceSteps = { rename, remove: (target) => rm(target, { recursive: true, force: true }) };

const exists = async (file: string): Promise<boolean> => (await lstat(file).catch(() => undefined)) !== undefined;
const asideOf = (move: Move): string => `${move.from}.old`;

/** A replacement that failed; `rolledBack` says whether the old output is back in place. */
export class ReplaceError extends OutputError {
  constructor(
    file: string,
    cause: unknown,
    readonly rolledBack: boolean,
  ) {
    super(file, `cannot move the finished output into place: ${describeFsError(cause)}`, { cause });
  }
}

/**
 * Moves finished files into place: each old one is renamed aside, the new one renamed in, and the old
 * ones removed last. A rename over an existing file would be atomic, but ext4 (auto_da_alloc) then
 * flushes the new file's pages to disk before the rename returns: 2.4x the time of a fresh output for
 * 2 GB. If a step fails, the moves done so far are undone; a crash in between is finished by the next
 * soup that claims the output (resumeReplacement, from the journal in the lock).
 */
export async function replaceFiles(plan: Replacement, steps: ReplaceSteps = fsSteps): Promise<void> {
  const done: { move: Move; hadOld: boolean }[] = [];
  for (const move of plan.moves) {
    const hadOld = await exists(move.to);
    try {
      if (hadOld) await steps.rename(move.to, asideOf(move));
    } catch (error) {
      throw new ReplaceError(move.to, error, await undo(done, steps));
    }
    try {
      await steps.rename(move.from, move.to);
    } catch (error) {
      const back = hadOld
        ? await steps.rename(asideOf(move), move.to).then(
            () => true,
            () => false,
          )
        : true;
      throw new ReplaceError(move.to, error, back && (await undo(done, steps)));
    }
    done.push({ move, hadOld });
  }
  // The new output is in place: a failure to remove the old one leaves only a hidden leftover.
  for (const move of plan.moves) await steps.remove(asideOf(move)).catch(() => {});
  for (const file of plan.obsolete) await steps.remove(file).catch(() => {});
}

async function undo(done: readonly { move: Move; hadOld: boolean }[], steps: ReplaceSteps): Promise<boolean> {
  let whole = true;
  for (const { move, hadOld } of [...done].reverse()) {
    await steps.rename(move.to, move.from).catch(() => (whole = false));
    if (hadOld) await steps.rename(asideOf(move), move.to).catch(() => (whole = false));
  }
  return whole;
}

/**
 * Finishes a replacement that a killed soup left half done: a new file still under its temporary name
 * is moved in (it was complete before the journal was written), an old one left aside with nothing in
 * its place is moved back. Says what it did.
 */
export async function resumeReplacement(plan: Replacement, steps: ReplaceSteps = fsSteps): Promise<string | undefined> {
  let finished = false;
  let restored = false;
  for (const move of plan.moves) {
    if (await exists(move.from)) {
      if (await exists(move.to)) await steps.rename(move.to, asideOf(move));
      await steps.rename(move.from, move.to);
      finished = true;
    } else if (!(await exists(move.to)) && (await exists(asideOf(move)))) {
      await steps.rename(asideOf(move), move.to);
      restored = true;
    }
  }
  const pending = (await Promise.all(plan.moves.map((move) => exists(asideOf(move))))).some(Boolean);
  for (const move of plan.moves) await steps.remove(asideOf(move));
  // The old output's data goes only when the new model that replaced it is in place.
  if (!restored) for (const file of plan.obsolete) await steps.remove(file);
  const output = plan.moves.at(-1)?.to;
  if (output === undefined) return undefined;
  if (restored) return `restored ${output}, which an earlier soup was killed while replacing`;
  if (finished || pending) return `finished replacing ${output}, which an earlier soup was killed in the middle of`;
  return undefined;
}

/** The lock beside an output: `.NAME.soup-lock`, holding the writer's process id and its journal. */
export function lockPathFor(output: string): string {
  return path.join(path.dirname(path.resolve(output)), `.${path.basename(output)}.soup-lock`);
}

interface LockRecord {
  pid: number;
  replacing?: Replacement;
}

const live = new Set<OutputClaim>();
let hooked = false;

/**
 * This process's claim on an output path: no other soup writes it while the claim is held. Released
 * when the output is in place, or at exit; a claim whose replacement was under way at exit stays, so
 * the next soup finishes that replacement.
 */
export class OutputClaim {
  private replacing = false;
  private released = false;

  constructor(
    readonly output: string,
    readonly lock: string,
    /** What claiming cleaned up after killed runs, for the command line to say. */
    readonly notices: readonly string[],
  ) {
    live.add(this);
    if (!hooked) {
      hooked = true;
      process.on('exit', () => {
        for (const claim of live) if (!claim.replacing) rmLockSync(claim.lock);
      });
    }
  }

  /** Writes the replacement's journal into the lock (atomically) before its first rename. */
  async record(plan: Replacement): Promise<void> {
    const temp = `${this.lock}.tmp-${pidTag()}`;
    await writeFile(temp, JSON.stringify({ pid: process.pid, replacing: plan } satisfies LockRecord));
    await rename(temp, this.lock);
    this.replacing = true;
  }

  /** Empties the journal once a failed replacement has put the old output back: there is nothing to finish. */
  async clearJournal(): Promise<void> {
    const temp = `${this.lock}.tmp-${pidTag()}`;
    await writeFile(temp, JSON.stringify({ pid: process.pid } satisfies LockRecord));
    await rename(temp, this.lock);
    this.replacing = false;
  }

  /** Leaves the lock and its journal for the next soup to finish (a replacement neither done nor undone). */
  keep(): void {
    this.released = true;
    live.delete(this);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    live.delete(this);
    await rm(this.lock, { force: true });
  }
}

function rmLockSync(lock: string): void {
  try {
    unlinkSync(lock);
  } catch {
    // Already gone.
  }
}

export interface ClaimOptions {
  isAlive?: (pid: number) => boolean;
  steps?: ReplaceSteps;
}

/**
 * Claims `output` for this process by creating its lock exclusively (a hard link of a complete file,
 * so no reader ever sees an empty lock). A lock whose process is gone is taken over, after finishing
 * the replacement its journal describes; then the temporary files of killed runs are removed.
 */
export async function claimOutput(output: string, options: ClaimOptions = {}): Promise<OutputClaim> {
  const isAlive = options.isAlive ?? isProcessAlive;
  const lock = lockPathFor(output);
  const notices: string[] = [];
  const content = `${pidTag()}`;
  const temp = `${lock}.tmp-${content}`;
  await writeFile(temp, JSON.stringify({ pid: process.pid } satisfies LockRecord)).catch((error: unknown) => {
    throw new OutputError(output, `cannot create: ${describeFsError(error)}`, { cause: error });
  });
  try {
    for (let attempt = 0; ; attempt++) {
      const taken = await link(temp, lock).then(
        () => true,
        (error: NodeJS.ErrnoException) => {
          if (error.code === 'EEXIST') return false;
          throw new OutputError(output, `cannot create: ${describeFsError(error)}`, { cause: error });
        },
      );
      if (taken) break;
      const record = await readLock(lock);
      if (record === undefined) continue; // Removed between our link and our read: try again.
      if (attempt > 2 || (isAlive(record.pid) && !(record.pid === process.pid && ![...live].some((claim) => claim.lock === lock)))) {
        throw new UsageError(`${output} is being written by another soup (process ${record.pid})`, {
          hint: `wait for it to finish, or write elsewhere; if no soup runs, remove ${lock}`,
        });
      }
      if (record.replacing !== undefined) {
        const notice = await resumeReplacement(record.replacing, options.steps);
        if (notice !== undefined) notices.push(notice);
      }
      await rm(lock, { force: true });
    }
  } finally {
    await rm(temp, { force: true });
  }
  notices.push(...describeRemoved(await removeDeadLeftovers(path.dirname(path.resolve(output)), outputTempPattern(output), isAlive)));
  return new OutputClaim(output, lock, notices);
}

async function readLock(lock: string): Promise<LockRecord | undefined> {
  const text = await readFile(lock, 'utf8').catch(() => undefined);
  if (text === undefined) return undefined;
  try {
    const record = JSON.parse(text) as LockRecord;
    if (Number.isSafeInteger(record.pid)) return record;
  } catch {
    // A lock we cannot read names no live writer.
  }
  return { pid: -1 };
}
