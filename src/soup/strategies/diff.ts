import { decodeNumbers, isFloatDType } from '../../checkpoint/dtype.js';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { IncompatibleError, throwIfAborted } from '../../errors.js';

export interface TensorDiff {
  name: string;
  maxAbsDiff: number;
  /** Cosine similarity of the two tensors as vectors; 1 when both are zero. */
  cosine: number;
}

export interface CheckpointDiff {
  tensors: TensorDiff[];
  maxAbsDiff: number;
  /** The tensor with the largest difference. */
  worst: string | undefined;
  minCosine: number;
}

/** Compares two checkpoints of the same tensors, one tensor at a time. */
export async function diffCheckpoints(a: Checkpoint, b: Checkpoint, signal?: AbortSignal): Promise<CheckpointDiff> {
  const problems = findIncompatibilities([a, b]);
  if (problems.length > 0) throw new IncompatibleError(problems);
  const tensors: TensorDiff[] = [];
  const otherDtype = new Map(b.tensors().map((tensor) => [tensor.name, tensor.dtype]));
  for (const tensor of a.tensors()) {
    throwIfAborted(signal);
    const dtypeB = otherDtype.get(tensor.name)!;
    const [x, y] = isFloatDType(tensor.dtype)
      ? await Promise.all([a.readFloats(tensor.name), b.readFloats(tensor.name)])
      : [decodeNumbers(await a.readBytes(tensor.name), tensor.dtype), decodeNumbers(await b.readBytes(tensor.name), dtypeB)];
    let maxAbsDiff = 0;
    let dot = 0;
    let normX = 0;
    let normY = 0;
    for (let i = 0; i < x.length; i++) {
      const [u, v] = [x[i]!, y[i]!];
      const d = Math.abs(u - v);
      // NaN compares false with everything: count it as an infinite difference unless both are NaN.
      if (d > maxAbsDiff || (Number.isNaN(d) && !(Number.isNaN(u) && Number.isNaN(v)))) maxAbsDiff = Number.isNaN(d) ? Infinity : d;
      dot += u * v;
      normX += u * u;
      normY += v * v;
    }
    const cosine = normX === 0 && normY === 0 ? 1 : normX === 0 || normY === 0 ? 0 : dot / Math.sqrt(normX * normY);
    tensors.push({ name: tensor.name, maxAbsDiff, cosine });
  }
  const worst = tensors.reduce<TensorDiff | undefined>((top, t) => (top === undefined || t.maxAbsDiff > top.maxAbsDiff ? t : top), undefined);
  return {
    tensors,
    maxAbsDiff: worst?.maxAbsDiff ?? 0,
    worst: worst?.name,
    minCosine: Math.min(1, ...tensors.map((t) => t.cosine)),
  };
}

/** What `soup diff` reports (--json): the two checkpoints' differences, judged against a tolerance. */
export interface DiffDocument {
  a: string;
  b: string;
  tolerance: number;
  verdict: 'identical' | 'within-tolerance' | 'different';
  maxAbsDiff: number;
  worst: string | null;
  minCosine: number;
  tensors: TensorDiff[];
}

/** Compares two checkpoints and judges the largest difference: none, at most `tolerance`, or more. */
export async function diffAgainst(a: Checkpoint, b: Checkpoint, tolerance: number, signal?: AbortSignal): Promise<DiffDocument> {
  const diff = await diffCheckpoints(a, b, signal);
  return {
    a: a.path,
    b: b.path,
    tolerance,
    verdict: diff.maxAbsDiff === 0 ? 'identical' : diff.maxAbsDiff <= tolerance ? 'within-tolerance' : 'different',
    maxAbsDiff: diff.maxAbsDiff,
    worst: diff.worst ?? null,
    minCosine: diff.minCosine,
    tensors: diff.tensors,
  };
}
