/** The arithmetic of soups on plain typed arrays: no I/O, no TensorFlow.js. */
import { f32ToBf16Bits, f32ToF16Bits, type FloatDType } from '../../checkpoint/dtype.js';
import { indexOfNonFinite } from '../../weights/finite.js';

// Strategies and the mixer find the check beside the arithmetic it guards.
export { indexOfNonFinite };

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

/** A chunk of output in its dtype, written straight from the float64 sums. */
export class ChunkOutput {
  readonly elementBytes: number;
  readonly bytes: Uint8Array;
  private readonly f64: Float64Array | undefined;
  readonly f32: Float32Array | undefined;
  private readonly u16: Uint16Array | undefined;

  /** `region` is 8-byte aligned memory for the chunk (an ArrayBuffer, or a slice of wasm memory). */
  constructor(
    region: Uint8Array,
    readonly dtype: FloatDType,
  ) {
    this.elementBytes = dtype === 'F64' ? 8 : dtype === 'F32' ? 4 : 2;
    this.bytes = region;
    const { buffer, byteOffset, byteLength } = region;
    if (dtype === 'F64') this.f64 = new Float64Array(buffer, byteOffset, byteLength / 8);
    else if (dtype === 'F32') this.f32 = new Float32Array(buffer, byteOffset, byteLength / 4);
    else this.u16 = new Uint16Array(buffer, byteOffset, byteLength / 2);
  }

  /** Writes sums[0..size) / divisor at offset `at`; false if any value is NaN or infinite. */
  write(sums: Float64Array, size: number, at: number, divisor: number): boolean {
    let bad = 0;
    if (this.f32 !== undefined) {
      const out = this.f32;
      for (let i = 0; i < size; i++) {
        const v = sums[i]! / divisor;
        bad += v - v === 0 ? 0 : 1;
        out[at + i] = v;
      }
    } else if (this.f64 !== undefined) {
      const out = this.f64;
      for (let i = 0; i < size; i++) {
        const v = sums[i]! / divisor;
        bad += v - v === 0 ? 0 : 1;
        out[at + i] = v;
      }
    } else {
      const out = this.u16!;
      const encode = this.dtype === 'F16' ? f32ToF16Bits : f32ToBf16Bits;
      for (let i = 0; i < size; i++) {
        const v = sums[i]! / divisor;
        bad += v - v === 0 ? 0 : 1;
        out[at + i] = encode(v);
      }
    }
    if (bad > 0) this.writeCanonicalNaNs(sums, size, at, divisor);
    return bad === 0;
  }

  /**
   * A NaN mean is stored as the dtype's positive quiet NaN, whatever NaN the arithmetic produced: which
   * of two NaN operands an addition passes on (sign and payload) is up to the compiler and the CPU,
   * so only a canonical NaN is the same in the JS and SIMD kernels and from run to run.
   */
  private writeCanonicalNaNs(sums: Float64Array, size: number, at: number, divisor: number): void {
    const bits = new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.byteLength);
    for (let i = 0; i < size; i++) {
      const v = sums[i]! / divisor;
      // biome-ignore lint/suspicious/noSelfCompare: the cheapest NaN test in this per-element loop
      if (v === v) continue;
      const offset = (at + i) * this.elementBytes;
      if (this.dtype === 'F64') bits.setBigUint64(offset, 0x7ff8000000000000n, true);
      else if (this.dtype === 'F32') bits.setUint32(offset, 0x7fc00000, true);
      else bits.setUint16(offset, this.dtype === 'F16' ? 0x7e00 : 0x7fc0, true);
    }
  }
}

/** Sums are kept for this many elements at a time, so they stay in the CPU cache while every input is added. */
export const BLOCK = 4096;

/**
 * Means of elements [from, to) of a chunk: the inputs added block by block into float64 `sums`, then
 * written as sum / divisor in the output's dtype. Returns false if any mean is NaN or infinite.
 */
export function combineRange(
  inputs: readonly Values[],
  weights: readonly number[] | undefined,
  divisor: number,
  out: ChunkOutput,
  from: number,
  to: number,
  sums: Float64Array,
): boolean {
  let finite = true;
  for (let base = from; base < to; base += BLOCK) {
    const size = Math.min(BLOCK, to - base);
    sumBlock(sums, inputs, weights, base, size);
    finite = out.write(sums, size, base, divisor) && finite;
  }
  return finite;
}
