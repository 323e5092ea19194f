import { InputError } from '../errors.js';
import type { NumericArray } from './npy.js';

/** IDX element types (LeCun's MNIST format); all multi-byte values are big-endian. */
const IDX_TYPES: Record<number, { size: number; integer: boolean; get: (dv: DataView, at: number) => number }> = {
  8: { size: 1, integer: true, get: (dv, at) => dv.getUint8(at) },
  9: { size: 1, integer: true, get: (dv, at) => dv.getInt8(at) },
  11: { size: 2, integer: true, get: (dv, at) => dv.getInt16(at) },
  12: { size: 4, integer: true, get: (dv, at) => dv.getInt32(at) },
  13: { size: 4, integer: false, get: (dv, at) => dv.getFloat32(at) },
  14: { size: 8, integer: false, get: (dv, at) => dv.getFloat64(at) },
};

/** Parses an (already gunzipped) IDX file. */
export function parseIdx(bytes: Uint8Array, file: string): NumericArray {
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) throw new InputError(file, 'not an IDX file (bad magic number)');
  const type = IDX_TYPES[bytes[2]!];
  if (type === undefined) throw new InputError(file, `unknown IDX element type 0x${bytes[2]!.toString(16)}`);
  const dims = bytes[3]!;
  const dataStart = 4 + 4 * dims;
  if (dims === 0 || bytes.length < dataStart) throw new InputError(file, `truncated IDX header (${dims} dimensions)`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: dims }, (_, i) => dv.getUint32(4 + 4 * i));
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== dataStart + count * type.size) {
    throw new InputError(file, `IDX header promises ${count * type.size} data bytes for shape [${shape.join(', ')}], the file has ${bytes.length - dataStart}`);
  }
  if (bytes[2] === 0x08) return { shape, values: bytes.slice(dataStart), integer: true };
  const values = type.integer ? new Int32Array(count) : new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = type.get(dv, dataStart + i * type.size);
  return { shape, values, integer: type.integer };
}

/** Encodes unsigned bytes as an IDX file (for fixtures and tests). */
export function encodeIdxU8(values: Uint8Array, shape: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + values.length);
  const dv = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = shape.length;
  shape.forEach((dim, i) => dv.setUint32(4 + 4 * i, dim));
  out.set(values, 4 + 4 * shape.length);
  return out;
}
