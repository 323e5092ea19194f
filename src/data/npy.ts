import { decodeFloats } from '../checkpoint/dtype.js';
import { InputError } from '../errors.js';
import { oneLine } from '../one-line.js';

/** Arrays as the data loaders hand them on: values as numbers, with their shape. */
export interface NumericArray {
  shape: number[];
  values: Float32Array | Float64Array | Int32Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array;
  /** Integer dtypes only: the values are exact integers (int64 ones included, if within 2^53). */
  integer: boolean;
}

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

type Descr = { size: number; integer: boolean; read: (bytes: Uint8Array, count: number) => NumericArray['values'] };

const view =
  <T>(Ctor: new (buffer: ArrayBufferLike, offset: number, length: number) => T, size: number) =>
  (bytes: Uint8Array, count: number): T => {
    const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
    return new Ctor(aligned.buffer, aligned.byteOffset, count);
  };

function int64ToInt32(signed: boolean) {
  return (bytes: Uint8Array, count: number): Int32Array => {
    const aligned = bytes.byteOffset % 8 === 0 ? bytes : bytes.slice();
    const source = signed ? new BigInt64Array(aligned.buffer, aligned.byteOffset, count) : new BigUint64Array(aligned.buffer, aligned.byteOffset, count);
    const out = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const value = source[i]!;
      if (value > 2147483647n || value < -2147483648n) throw new RangeError(`value ${value} at index ${i} does not fit 32 bits`);
      out[i] = Number(value);
    }
    return out;
  };
}

/** Little-endian numpy dtypes we read ('|' means byte order does not apply). */
const DESCRS: Record<string, Descr> = {
  '|u1': { size: 1, integer: true, read: view(Uint8Array, 1) },
  '|i1': { size: 1, integer: true, read: view(Int8Array, 1) },
  '|b1': { size: 1, integer: true, read: view(Uint8Array, 1) },
  '<u2': { size: 2, integer: true, read: view(Uint16Array, 2) },
  '<i2': { size: 2, integer: true, read: view(Int16Array, 2) },
  '<u4': { size: 4, integer: true, read: view(Uint32Array, 4) },
  '<i4': { size: 4, integer: true, read: view(Int32Array, 4) },
  '<i8': { size: 8, integer: true, read: int64ToInt32(true) },
  '<u8': { size: 8, integer: true, read: int64ToInt32(false) },
  '<f2': { size: 2, integer: false, read: (bytes) => decodeFloats(bytes, 'F16') },
  '<f4': { size: 4, integer: false, read: view(Float32Array, 4) },
  '<f8': { size: 8, integer: false, read: view(Float64Array, 8) },
};

/** What an .npy header says: where the data starts, its shape, and how to decode its values. */
export interface NpyHeader {
  shape: number[];
  /** Byte offset of the first value. */
  dataStart: number;
  itemSize: number;
  integer: boolean;
  descr: string;
  decode: (bytes: Uint8Array, count: number) => NumericArray['values'];
}

/** Parses an .npy header from the first bytes of the file (format versions 1, 2 and 3); undefined if more bytes are needed. */
export function parseNpyHeader(bytes: Uint8Array, file: string): NpyHeader | undefined {
  if (bytes.length < 10) return undefined;
  if (NPY_MAGIC.some((b, i) => bytes[i] !== b)) throw new InputError(file, 'not a .npy array (bad magic bytes)');
  const major = bytes[6]!;
  const headerLengthBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + headerLengthBytes) return undefined;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
  const dataStart = 8 + headerLengthBytes + headerLength;
  if (![1, 2, 3].includes(major) || headerLength > 1 << 20) throw new InputError(file, `unsupported or truncated .npy header (version ${major})`);
  if (dataStart > bytes.length) return undefined;
  const header = new TextDecoder().decode(bytes.subarray(8 + headerLengthBytes, dataStart));
  // numpy keeps the last of a repeated key and we would read the first: refuse, rather than disagree.
  const keys = [...header.matchAll(/'([^']*)'\s*:/g)].map((match) => match[1]!);
  const repeated = keys.find((key, i) => keys.indexOf(key) !== i);
  if (repeated !== undefined) throw new InputError(file, `malformed .npy header: the key '${oneLine(repeated, 100)}' is given twice`);
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined)
    throw new InputError(file, `malformed .npy header: ${oneLine(header.trim(), 300)}`);
  if (fortran === 'True') throw new InputError(file, 'Fortran-ordered arrays are not supported (save with np.ascontiguousarray)');
  const dtype = DESCRS[descr.replace(/^=/, '<')];
  if (dtype === undefined)
    throw new InputError(file, `dtype ${descr} is not supported (use bool, int8 to int64, uint8 to uint64, float16, float32 or float64, little-endian)`);
  const shape = shapeText
    .split(',')
    .map((part) => part.trim())
    .filter((part) => part !== '')
    .map(Number);
  if (shape.some((dim) => !Number.isSafeInteger(dim) || dim < 0)) throw new InputError(file, `malformed shape (${shapeText})`);
  const decode = (data: Uint8Array, count: number) => {
    try {
      return dtype.read(data, count);
    } catch (error) {
      throw new InputError(file, (error as Error).message, { cause: error });
    }
  };
  return { shape, dataStart, itemSize: dtype.size, integer: dtype.integer, descr, decode };
}

/** Parses one .npy array (format versions 1, 2 and 3). */
export function parseNpy(bytes: Uint8Array, file: string): NumericArray {
  const header = parseNpyHeader(bytes, file);
  if (header === undefined) throw new InputError(file, bytes.length < 10 ? 'not a .npy array (bad magic bytes)' : 'unsupported or truncated .npy header');
  const { shape, dataStart, itemSize, descr } = header;
  const count = shape.reduce((a, b) => a * b, 1);
  if (dataStart + count * itemSize > bytes.length) {
    throw new InputError(file, `truncated: shape (${shape.join(', ')}) of ${descr} needs ${count * itemSize} bytes, the file has ${bytes.length - dataStart}`);
  }
  return { shape, values: header.decode(bytes.subarray(dataStart, dataStart + count * itemSize), count), integer: header.integer };
}

/** Encodes an array as .npy version 1.0 (for fixtures and tests). */
export function encodeNpy(values: Uint8Array | Float32Array | BigInt64Array | Int32Array, shape: number[]): Uint8Array {
  const descr = values instanceof Uint8Array ? '|u1' : values instanceof Float32Array ? '<f4' : values instanceof Int32Array ? '<i4' : '<i8';
  const shapeText = shape.length === 1 ? `${shape[0]},` : shape.join(', ');
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shapeText}), }`;
  // numpy pads the header with spaces and a newline so data starts on a 64-byte boundary.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = `${header.padEnd(total - 10 - 1, ' ')}\n`;
  const out = new Uint8Array(total + values.byteLength);
  out.set(NPY_MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  new DataView(out.buffer).setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  out.set(new Uint8Array(values.buffer, values.byteOffset, values.byteLength), total);
  return out;
}
