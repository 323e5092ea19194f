/** Index of the first NaN or infinity, or -1. */
export function indexOfNonFinite(values: ArrayLike<number>): number {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    // v - v is NaN exactly for NaN and +-Infinity, and is cheaper than Number.isFinite in hot loops.
    if (v - v !== 0) return i;
  }
  return -1;
}
