import type { Checkpoint, TensorInfo } from '../../checkpoint/types.js';
import { isFloatDType } from '../../checkpoint/dtype.js';
import { throwIfAborted } from '../../errors.js';
import { addScaled } from '../kernel/average.js';
import { readChecked, type CandidateWeights } from '../../weights/candidate.js';

/**
 * Greedy's steps depend on each other only through accept/reject, and a candidate's weights depend
 * only on which ingredients are in it, not on any score. So while step i is scored, idle slots can
 * score step i+1's candidate for both of step i's outcomes (and further down, breadth first): once
 * step i's score is known, the next step's score is often already in, and the branch not taken is
 * cancelled. The decisions are those of the sequential loop, by construction: each is still made
 * from the score of the one candidate the sequential loop would score.
 */

/** A step's outcome path: one letter per earlier step, A accepted or R rejected. */
type Path = string;

export interface Lookahead {
  /** The score of step `step`'s candidate on the path the decisions took, scoring others ahead while it waits. */
  score(step: number, path: Path): Promise<number>;
  /** Forgets the evaluations whose path does not continue `path` (the decisions so far), cancelling those still running. */
  prune(path: Path): void;
  /** Cancels everything and waits until every evaluation has stopped. */
  close(): Promise<void>;
  /** Evaluations run whose result no decision used (cancelled or finished on a branch not taken). */
  readonly wasted: number;
  /** Of those, the ones answered from the score cache (not run at all). */
  readonly wastedCached: number;
}

/**
 * `order` lists the ingredients after the first in the order greedy tries them; `first` starts the
 * soup. `slots` evaluations run at once; `score` is called with a signal that aborts when the branch dies.
 */
export function createLookahead(
  first: Checkpoint,
  order: readonly Checkpoint[],
  tensors: readonly TensorInfo[],
  slots: number,
  score: (candidate: CandidateWeights, label: string, signal: AbortSignal) => Promise<{ score: number; cached?: boolean }>,
  options: { allowNonFinite?: boolean; signal?: AbortSignal } = {},
): Lookahead {
  interface Entry {
    step: number;
    path: Path;
    controller: AbortController;
    promise: Promise<number>;
    settled: boolean;
    used: boolean;
    cached: boolean;
  }
  const entries = new Map<string, Entry>();
  const all: Entry[] = [];
  let changed: (() => void) | undefined;
  // A cancelled evaluation holds its slot until it has really stopped (a cluster job until Slurm ends it).
  const inFlight = (): number => all.filter((entry) => !entry.settled).length;

  const membersOf = (path: Path): Checkpoint[] => [first, ...[...path].flatMap((outcome, k) => (outcome === 'A' ? [order[k]!] : []))];
  const launch = (step: number, path: Path): Entry | undefined => {
    if (step >= order.length) return undefined;
    const key = `${step}:${path}`;
    const known = entries.get(key);
    if (known !== undefined) return known;
    const members = [...membersOf(path), order[step]!];
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(options.signal!.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const label = `${order[step]!.name} (+${members.length - 1} in soup)`;
    const entry: Entry = { step, path, controller, settled: false, used: false, cached: false, promise: Promise.resolve(0) };
    entry.promise = score(meanOf(members, tensors, options.allowNonFinite ?? false), label, controller.signal)
      .then((result) => {
        entry.cached = result.cached ?? false;
        return result.score;
      })
      .finally(() => {
        entry.settled = true;
        options.signal?.removeEventListener('abort', onAbort);
        changed?.();
      });
    // A branch that dies may fail (cancelled); only a used entry's failure matters, through its awaiter.
    entry.promise.catch(() => {});
    entries.set(key, entry);
    all.push(entry);
    return entry;
  };

  /** Fills free slots with the steps after `step` on `path`, breadth first, rejections first (the likelier outcome). */
  const fill = (step: number, path: Path): void => {
    let level: Path[] = [path];
    for (let next = step + 1; next < order.length && inFlight() < slots; next++) {
      level = level.flatMap((p) => [`${p}R`, `${p}A`]);
      for (const p of level) {
        if (inFlight() >= slots) return;
        launch(next, p);
      }
    }
  };

  return {
    async score(step, path) {
      throwIfAborted(options.signal);
      const entry = launch(step, path)!;
      entry.used = true;
      while (!entry.settled) {
        fill(step, path);
        await new Promise<void>((resolve) => (changed = resolve));
      }
      return entry.promise;
    },
    prune(path) {
      for (const [key, entry] of entries) {
        if (entry.path.startsWith(path)) continue;
        entry.controller.abort(new Error('a branch greedy did not take'));
        entries.delete(key);
      }
    },
    async close() {
      for (const entry of all) if (!entry.settled) entry.controller.abort(new Error('the soup is done'));
      await Promise.allSettled(all.map((entry) => entry.promise));
    },
    get wasted() {
      return all.filter((entry) => !entry.used).length;
    },
    get wastedCached() {
      return all.filter((entry) => !entry.used && entry.cached).length;
    },
  };
}

/**
 * The mean of `members` as a candidate, summed in float64 in member order exactly as the running
 * soup sums them, so a candidate scored ahead has the bits the sequential loop would score.
 */
export function meanOf(members: readonly Checkpoint[], tensors: readonly TensorInfo[], allowNonFinite: boolean): CandidateWeights {
  return {
    tensors,
    parts: members.map((checkpoint) => ({ checkpoint, weight: 1 / members.length })),
    floats: async (name) => {
      const tensor = tensors.find((info) => info.name === name);
      let sum: Float64Array | undefined;
      for (const member of members) {
        const values = await readChecked(member, name, allowNonFinite);
        sum ??= new Float64Array(values.length);
        addScaled(sum, values);
      }
      const out = new Float32Array(sum?.length ?? 0);
      if (tensor === undefined || !isFloatDType(tensor.dtype)) return out;
      for (let i = 0; i < out.length; i++) out[i] = sum![i]! / members.length;
      return out;
    },
    bytes: (name) => members[0]!.readBytes(name),
  };
}
