/** The arithmetic of soups on plain typed arrays: no I/O, no TensorFlow.js. */

export type FloatArray = Float32Array | Float64Array;

/** sum[i] += weight * values[i] */
export function addScaled(sum: Float64Array, values: ArrayLike<number>, weight = 1): void {
  if (values.length !== sum.length) throw new RangeError(`length ${values.length} does not match ${sum.length}`);
  if (weight === 1) {
    for (let i = 0; i < sum.length; i++) sum[i]! += values[i]!;
  } else {
    for (let i = 0; i < sum.length; i++) sum[i]! += weight * values[i]!;
  }
}

/** sum[i] /= divisor, in place: dividing (not multiplying by 1/n) keeps means of equal values exact. */
export function divideInPlace(sum: Float64Array, divisor: number): Float64Array {
  for (let i = 0; i < sum.length; i++) sum[i]! /= divisor;
  return sum;
}

/** Index of the first NaN or infinity, or -1. */
export function indexOfNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is NaN exactly for NaN and +-Infinity, and is cheaper than Number.isFinite in hot loops.
    if (v - v !== 0) return i;
  }
  return -1;
}


type Values = Float32Array | Float64Array;

/*
 * Fixed-arity kernels: adding four inputs per pass keeps the float64 sums' loads and stores a quarter
 * of a one-input-at-a-time loop, and each function sees one shape of call, so V8 compiles it tightly
 * (about 3x faster than a generic loop over an array of inputs, measured in bench/).
 */
function add4(sums: Float64Array, a: Values, b: Values, c: Values, d: Values, base: number, size: number, first: boolean): void {
  if (first) for (let i = 0; i < size; i++) sums[i] = a[base + i]! + b[base + i]! + c[base + i]! + d[base + i]!;
  else for (let i = 0; i < size; i++) sums[i]! += a[base + i]! + b[base + i]! + c[base + i]! + d[base + i]!;
}

function add2(sums: Float64Array, a: Values, b: Values, base: number, size: number, first: boolean): void {
  if (first) for (let i = 0; i < size; i++) sums[i] = a[base + i]! + b[base + i]!;
  else for (let i = 0; i < size; i++) sums[i]! += a[base + i]! + b[base + i]!;
}

function add1(sums: Float64Array, a: Values, weight: number, base: number, size: number, first: boolean): void {
  if (first) for (let i = 0; i < size; i++) sums[i] = weight * a[base + i]!;
  else for (let i = 0; i < size; i++) sums[i]! += weight * a[base + i]!;
}

/**
 * sums[0..size) = sum over k of weights[k] * inputs[k][base + i] (plain sum without weights), for
 * one cache-sized block of a chunk.
 */
export function sumBlock(sums: Float64Array, inputs: readonly Values[], weights: readonly number[] | undefined, base: number, size: number): void {
  let k = 0;
  if (weights === undefined) {
    for (; k + 4 <= inputs.length; k += 4) add4(sums, inputs[k]!, inputs[k + 1]!, inputs[k + 2]!, inputs[k + 3]!, base, size, k === 0);
    for (; k + 2 <= inputs.length; k += 2) add2(sums, inputs[k]!, inputs[k + 1]!, base, size, k === 0);
  }
  for (; k < inputs.length; k++) add1(sums, inputs[k]!, weights?.[k] ?? 1, base, size, k === 0);
}
