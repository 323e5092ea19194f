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

