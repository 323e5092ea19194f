/**
 * Tensor element types, named as safetensors names them, and the conversions between their bytes
 * and the float arrays the averaging code works on. Assumes a little-endian host (x86, ARM), as
 * both file formats store little-endian data.
 */
import { InputError } from '../errors.js';

export const DTYPE_SIZES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
} as const;

export type DType = keyof typeof DTYPE_SIZES;
export type FloatDType = 'F64' | 'F32' | 'F16' | 'BF16';
export const FLOAT_DTYPES: readonly FloatDType[] = ['F64', 'F32', 'F16', 'BF16'];

export function isDType(value: string): value is DType {
  return Object.hasOwn(DTYPE_SIZES, value);
}

export function isFloatDType(dtype: DType): dtype is FloatDType {
  return (FLOAT_DTYPES as readonly string[]).includes(dtype);
}

/** The dtype of a tensor that is about to be averaged; an integer tensor there is a caller's mistake named in the error. */
export function requireFloat(file: string, tensor: { name: string; dtype: DType }): FloatDType {
  if (!isFloatDType(tensor.dtype)) throw new InputError(file, `is ${tensor.dtype}, not a float tensor`, { tensor: tensor.name });
  return tensor.dtype;
}

export function dtypeSize(dtype: DType): number {
  return DTYPE_SIZES[dtype];
}

/** Number of elements of a shape; [] is a scalar with one element. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half -> single, exact for every half value (including subnormals, inf and NaN). */
export function f16BitsToF32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** Single -> IEEE half with round-to-nearest-even, as numpy's astype(float16) does. */
export function f32ToF16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  const sign = (x >>> 16) & 0x8000;
  const exponent = (x >>> 23) & 0xff;
  let mantissa = x & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // Subnormal half (or zero): shift the implicit leading one into the mantissa, then round.
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const halfMantissa = mantissa >>> shift;
    const remainder = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const roundUp = remainder > halfway || (remainder === halfway && (halfMantissa & 1) === 1);
    return sign | (halfMantissa + (roundUp ? 1 : 0));
  }
  const halfMantissa = mantissa >>> 13;
  const remainder = mantissa & 0x1fff;
  const roundUp = remainder > 0x1000 || (remainder === 0x1000 && (halfMantissa & 1) === 1);
  // A carry out of the mantissa correctly bumps the exponent (and can reach infinity).
  return (sign | (halfExponent << 10) | halfMantissa) + (roundUp ? 1 : 0);
}

export function bf16BitsToF32(bits: number): number {
  u32Scratch[0] = bits << 16;
  return f32Scratch[0]!;
}

/** Single -> bfloat16 with round-to-nearest-even; NaN stays NaN (quiet). */
export function f32ToBf16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0]!;
  if ((x & 0x7f800000) === 0x7f800000 && (x & 0x7fffff) !== 0) return ((x >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((x >>> 16) & 1);
  return ((x + rounding) >>> 16) & 0xffff;
}

let f16Table: Float32Array | undefined;
/** All 65536 half values, so decoding is one lookup per element. */
function halfTable(): Float32Array {
  if (f16Table === undefined) {
    f16Table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) f16Table[bits] = f16BitsToF32(bits);
  }
  return f16Table;
}

/**
 * The float values of a float tensor's bytes; F64 stays double so nothing is lost. F32 and F64 are
 * views of `bytes` when it is aligned; F16 and BF16 are decoded into `into` when given.
 */
export function decodeFloats(bytes: Uint8Array, dtype: FloatDType, into?: Float32Array): Float32Array | Float64Array {
  const aligned = alignedCopyIfNeeded(bytes, dtypeSize(dtype));
  const count = aligned.byteLength / dtypeSize(dtype);
  switch (dtype) {
    case 'F64':
      return new Float64Array(aligned.buffer, aligned.byteOffset, count);
    case 'F32':
      return new Float32Array(aligned.buffer, aligned.byteOffset, count);
    case 'F16': {
      const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
      const table = halfTable();
      const out = into?.subarray(0, count) ?? new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = table[bits[i]!]!;
      return out;
    }
    case 'BF16': {
      const bits = new Uint16Array(aligned.buffer, aligned.byteOffset, count);
      const out = into?.subarray(0, count) ?? new Float32Array(count);
      const outBits = new Uint32Array(out.buffer, out.byteOffset, count);
      for (let i = 0; i < count; i++) outBits[i] = bits[i]! << 16;
      return out;
    }
  }
}

/** The bytes of float values stored as `dtype`. */
export function encodeFloats(values: ArrayLike<number>, dtype: FloatDType): Uint8Array {
  const n = values.length;
  switch (dtype) {
    case 'F64':
      return new Uint8Array(Float64Array.from(values).buffer);
    case 'F32':
      return new Uint8Array(Float32Array.from(values).buffer);
    case 'F16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToF16Bits(values[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'BF16': {
      const out = new Uint16Array(n);
      for (let i = 0; i < n; i++) out[i] = f32ToBf16Bits(values[i]!);
      return new Uint8Array(out.buffer);
    }
  }
}

/** Typed-array views need offsets that are a multiple of the element size. */
function alignedCopyIfNeeded(bytes: Uint8Array, elementSize: number): Uint8Array {
  return bytes.byteOffset % elementSize === 0 ? bytes : bytes.slice();
}

/** Parses a user's `--dtype` (f32, float16, bf16, ...) into a float dtype. */
export function parseFloatDType(text: string): FloatDType | undefined {
  const aliases: Record<string, FloatDType> = {
    f64: 'F64',
    float64: 'F64',
    double: 'F64',
    f32: 'F32',
    float32: 'F32',
    float: 'F32',
    f16: 'F16',
    float16: 'F16',
    half: 'F16',
    bf16: 'BF16',
    bfloat16: 'BF16',
  };
  return aliases[text.toLowerCase()];
}

/** The values of any tensor as numbers (int64 ones rounded to the nearest double), for comparisons. */
export function decodeNumbers(bytes: Uint8Array, dtype: DType): ArrayLike<number> {
  if (isFloatDType(dtype)) return decodeFloats(bytes, dtype);
  const aligned = alignedCopyIfNeeded(bytes, dtypeSize(dtype));
  const { buffer, byteOffset, byteLength } = aligned;
  const count = byteLength / dtypeSize(dtype);
  switch (dtype) {
    case 'I64':
      return Float64Array.from(new BigInt64Array(buffer, byteOffset, count), Number);
    case 'U64':
      return Float64Array.from(new BigUint64Array(buffer, byteOffset, count), Number);
    case 'I32':
      return new Int32Array(buffer, byteOffset, count);
    case 'U32':
      return new Uint32Array(buffer, byteOffset, count);
    case 'I16':
      return new Int16Array(buffer, byteOffset, count);
    case 'U16':
      return new Uint16Array(buffer, byteOffset, count);
    case 'I8':
      return new Int8Array(buffer, byteOffset, count);
    case 'U8':
    case 'BOOL':
      return aligned;
  }
}
