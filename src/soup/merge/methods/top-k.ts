/**
 * The top-k of |delta| over a whole model, as the TIES paper and FusionBench take it, computed in two
 * streaming passes (a radix select on the float32 bits of |delta|), never holding more than one
 * tensor's deltas. Magnitudes are ranked in float32 precision; entries tied with the threshold are
 * all kept, as FusionBench's `abs >= kth value` keeps them.
 */
import { applyMask } from './task-vectors.js';

const bits = new Uint32Array(1);
const asFloat = new Float32Array(bits.buffer);

function magnitudeBits(value: number): number {
  asFloat[0] = Math.abs(value);
  return bits[0]!;
}

export class GlobalTopK {
  /** `threshold`: float32 bits of the smallest magnitude kept; -1 keeps everything, Infinity nothing. */
  constructor(private readonly threshold: number) {}

  mask(_tensor: string, delta: Float64Array, rescale: boolean): Float64Array {
    if (this.threshold < 0) return delta;
    const keep = new Uint8Array(delta.length);
    for (let i = 0; i < delta.length; i++) keep[i] = magnitudeBits(delta[i]!) >= this.threshold ? 1 : 0;
    return applyMask(delta, keep, rescale);
  }
}

/** One ingredient's deltas of every float tensor, tensor after tensor. */
export type DeltaPass = () => AsyncIterable<readonly Float64Array[]>;

/** Finds in a 65536-bucket histogram the bucket holding the `rank`-th largest (1-based), and how many lie above it. */
function findBucket(histogram: Float64Array, rank: number): { bucket: number; above: number } {
  let above = 0;
  for (let bucket = histogram.length - 1; bucket >= 0; bucket--) {
    if (above + histogram[bucket]! >= rank) return { bucket, above };
    above += histogram[bucket]!;
  }
  return { bucket: 0, above };
}

/** Per ingredient, the threshold keeping its `keep[k]` largest magnitudes over all tensors `pass` yields. */
export async function globalTopK(pass: DeltaPass, keep: readonly number[], total: number): Promise<GlobalTopK[]> {
  const ingredients = keep.length;
  const high = Array.from({ length: ingredients }, () => new Float64Array(65536));
  for await (const deltas of pass()) {
    deltas.forEach((delta, k) => {
      const histogram = high[k]!;
      for (let i = 0; i < delta.length; i++) histogram[magnitudeBits(delta[i]!) >>> 16]!++;
    });
  }
  const buckets = keep.map((count, k) => (count <= 0 || count >= total ? undefined : findBucket(high[k]!, count)));
  const low = Array.from({ length: ingredients }, () => new Float64Array(65536));
  if (buckets.some((bucket) => bucket !== undefined)) {
    for await (const deltas of pass()) {
      deltas.forEach((delta, k) => {
        const found = buckets[k];
        if (found === undefined) return;
        const histogram = low[k]!;
        for (let i = 0; i < delta.length; i++) {
          const b = magnitudeBits(delta[i]!);
          if (b >>> 16 === found.bucket) histogram[b & 0xffff]!++;
        }
      });
    }
  }
  return keep.map((count, k) => {
    if (count >= total) return new GlobalTopK(-1);
    if (count <= 0) return new GlobalTopK(Infinity);
    const { bucket, above } = buckets[k]!;
    const inner = findBucket(low[k]!, count - above);
    return new GlobalTopK(((bucket << 16) | inner.bucket) >>> 0);
  });
}
