/**
 * Diverged ingredients: runs whose weights hold NaN or infinities (a learning rate too high, fp16
 * overflow). Sweeps have them, and greedy soups exist to leave them out, so finding one is data: it is
 * scored, marked, ranked last, and never averaged into a soup (a single NaN makes the mean NaN).
 */
import { isFloatDType } from '../checkpoint/dtype.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { throwIfAborted } from '../errors.js';
import { indexOfNonFinite, type FloatArray } from './kernel/average.js';

/** Where a checkpoint first holds a non-finite value. */
export interface Divergence {
  tensor: string;
  element: number;
  /** "NaN", "Infinity" or "-Infinity" (JSON has no number for them). */
  value: string;
}

/**
 * The first NaN or infinity in the checkpoint's float tensors (in tensor order), or undefined if every
 * value is finite. `keep` gets each finite tensor as read, for a caller that holds the weights anyway
 * (the learned soup), so that no tensor is read twice.
 */
export async function findNonFinite(
  checkpoint: Checkpoint,
  signal?: AbortSignal,
  keep?: (tensor: string, values: FloatArray) => void,
): Promise<Divergence | undefined> {
  for (const tensor of checkpoint.tensors()) {
    if (!isFloatDType(tensor.dtype)) continue;
    throwIfAborted(signal);
    const values = await checkpoint.readFloats(tensor.name);
    const at = indexOfNonFinite(values);
    if (at >= 0) return { tensor: tensor.name, element: at, value: String(values[at]) };
    keep?.(tensor.name, values);
  }
  return undefined;
}

/** Every checkpoint's first non-finite value, by checkpoint; the finite ones are absent. */
export async function findDiverged(checkpoints: readonly Checkpoint[], signal?: AbortSignal): Promise<Map<Checkpoint, Divergence>> {
  const found = new Map<Checkpoint, Divergence>();
  for (const checkpoint of checkpoints) {
    const divergence = await findNonFinite(checkpoint, signal);
    if (divergence !== undefined) found.set(checkpoint, divergence);
  }
  return found;
}

/** "NaN in fc1.weight (element 3)", for tables and notes. */
export function describeDivergence(divergence: Divergence): string {
  return `${divergence.value} in ${divergence.tensor} (element ${divergence.element})`;
}

/**
 * The ingredients whose weights hold NaN or infinities, each told once through `warn`. With
 * allowNonFinite nothing is looked for: the user keeps them in, as before.
 */
export async function scanDiverged(
  checkpoints: readonly Checkpoint[],
  options: { allowNonFinite?: boolean | undefined; leftOutOf?: string },
  warn: (message: string) => void,
  signal?: AbortSignal,
): Promise<Map<Checkpoint, Divergence>> {
  if (options.allowNonFinite === true) return new Map();
  const found = await findDiverged(checkpoints, signal);
  const leftOut = options.leftOutOf === undefined ? '' : `, ranked last and left out of ${options.leftOutOf} (--allow-nonfinite keeps it in)`;
  for (const [checkpoint, divergence] of found) warn(`${checkpoint.name} diverged: ${describeDivergence(divergence)}; it is scored${leftOut}`);
  return found;
}
