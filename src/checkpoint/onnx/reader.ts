import path from 'node:path';
import { InputError } from '../../errors.js';
import { decodeFloats, dtypeSize, isFloatDType, numel, type DType } from '../dtype.js';
import { RangeReader, fileSize } from '../files.js';
import type { Checkpoint, ChunkScratch, TensorInfo } from '../types.js';
import { ProtoCursor, decodeVarintBig } from './protobuf.js';
import { scanOnnx, type OnnxInitializer, type OnnxScan } from './scan.js';
import { findRefusal } from './refusals.js';

export const ONNX_SUFFIX = '.onnx';

/**
 * An .onnx model as a checkpoint: its initializers are the tensors. Opening scans the protobuf
 * without reading raw tensor data; values are read one tensor at a time, straight from the model
 * file or its external data files.
 */
export class OnnxCheckpoint implements Checkpoint {
  readonly format = 'onnx' as const;
  private readonly byName: Map<string, OnnxInitializer>;
  private readonly external = new Map<string, RangeReader>();
  private lastVarints: { name: string; values: Float32Array | Float64Array } | undefined;

  private constructor(
    readonly name: string,
    readonly path: string,
    readonly scan: OnnxScan,
    readonly reader: RangeReader,
    private readonly infos: TensorInfo[],
    readonly files: readonly string[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.byName = new Map(scan.initializers.map((initializer) => [initializer.name, initializer]));
  }

  static async open(file: string, name = path.basename(file, ONNX_SUFFIX)): Promise<OnnxCheckpoint> {
    const reader = new RangeReader([{ path: file, size: await fileSize(file) }]);
    try {
      const scan = await scanOnnx(new ProtoCursor(reader, file));
      const refusal = findRefusal(scan);
      if (refusal !== undefined) throw refusal;
      const infos = scan.initializers.map((initializer): TensorInfo => {
        const info: TensorInfo = { name: initializer.name, shape: initializer.dims, dtype: initializer.dtype, storedBytes: storedBytesOf(initializer) };
        if (initializer.data.kind === 'external') info.storage = 'external data';
        else if (initializer.data.kind === 'inline' && initializer.data.encoding !== 'raw') info.storage = `packed ${initializer.data.encoding}`;
        return info;
      });
      const files = [file, ...new Set(scan.initializers.flatMap((initializer) => (initializer.data.kind === 'external' ? [initializer.data.file] : [])))];
      const metadata = Object.fromEntries(scan.metadata.map((entry) => [entry.key, entry.value]));
      return new OnnxCheckpoint(name, file, scan, reader, infos, files, metadata);
    } catch (error) {
      await reader.close();
      throw error;
    }
  }

  tensors(): readonly TensorInfo[] {
    return this.infos;
  }

  initializer(name: string): OnnxInitializer {
    const initializer = this.byName.get(name);
    if (initializer === undefined) throw new InputError(this.path, 'no such initializer', { tensor: name });
    return initializer;
  }

  async readFloats(name: string): Promise<Float32Array | Float64Array> {
    const initializer = this.initializer(name);
    if (!isFloatDType(initializer.dtype)) throw new InputError(this.path, `is ${initializer.dtype}, not a float tensor`, { tensor: name });
    return decodeFloats(await this.readBytes(name), initializer.dtype);
  }

  async readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    const initializer = this.initializer(name);
    const { data, dtype } = initializer;
    if (!isFloatDType(dtype)) throw new InputError(this.path, `is ${dtype}, not a float tensor`, { tensor: name });
    if (data.kind === 'inline' && data.encoding === 'varint') {
      if (this.lastVarints?.name !== name) this.lastVarints = { name, values: await this.readFloats(name) };
      return this.lastVarints.values.subarray(start, start + count);
    }
    const size = dtypeSize(dtype);
    const length = count * size;
    const bytes = scratch !== undefined && scratch.bytes.byteLength >= length ? scratch.bytes.subarray(0, length) : new Uint8Array(length);
    if (length > 0) await this.readStored(initializer, start * size, bytes);
    return decodeFloats(bytes, dtype, scratch?.floats);
  }

  /** Values little-endian in the initializer's dtype, whatever field they are stored in. */
  async readBytes(name: string): Promise<Uint8Array> {
    const initializer = this.initializer(name);
    const { data, dtype } = initializer;
    const count = numel(initializer.dims);
    if (data.kind === 'empty' || count === 0) return new Uint8Array(0);
    if (data.kind === 'inline' && data.encoding === 'varint') {
      const stored = await this.reader.read(data.span.dataStart, data.span.end - data.span.dataStart);
      return decodeVarintValues(
        stored,
        dtype,
        count,
        () => new InputError(this.path, `holds fewer values than its shape [${initializer.dims.join(', ')}] needs`, { tensor: name }),
      );
    }
    const out = new Uint8Array(count * dtypeSize(dtype));
    await this.readStored(initializer, 0, out);
    return out;
  }

  async close(): Promise<void> {
    this.lastVarints = undefined;
    await this.reader.close();
    await Promise.all([...this.external.values()].map((reader) => reader.close()));
  }

  /** Bytes at `offset` of a tensor stored fixed-width (raw_data, float_data, double_data, external). */
  private async readStored(initializer: OnnxInitializer, offset: number, out: Uint8Array): Promise<void> {
    const { data } = initializer;
    if (data.kind === 'external') {
      let reader = this.external.get(data.file);
      if (reader === undefined) {
        reader = new RangeReader([{ path: data.file, size: await fileSize(data.file) }]);
        this.external.set(data.file, reader);
      }
      await reader.readInto(data.offset + offset, out);
    } else if (data.kind === 'inline') {
      await this.reader.readInto(data.span.dataStart + offset, out);
    }
  }
}

function storedBytesOf(initializer: OnnxInitializer): number {
  const { data } = initializer;
  if (data.kind === 'external') return data.length;
  if (data.kind === 'inline') return data.span.end - data.span.dataStart;
  return 0;
}

/** int32_data / int64_data / uint64_data varints as little-endian values of `dtype`. */
function decodeVarintValues(stored: Uint8Array, dtype: DType, count: number, short: () => Error): Uint8Array {
  const out = new Uint8Array(count * dtypeSize(dtype));
  const view = new DataView(out.buffer);
  let at = 0;
  for (let i = 0; i < count; i++) {
    const decoded = decodeVarintBig(stored, at);
    if (decoded === undefined) throw short();
    at = decoded.next;
    if (dtype === 'I64' || dtype === 'U64') {
      view.setBigInt64(i * 8, decoded.value, true);
      continue;
    }
    // Negative int32s arrive sign-extended to 64 bits: the low bits are the value.
    const value = Number(BigInt.asUintN(32, decoded.value));
    switch (dtypeSize(dtype)) {
      case 1:
        out[i] = value & 0xff;
        break;
      case 2:
        view.setUint16(i * 2, value & 0xffff, true);
        break;
      default:
        view.setUint32(i * 4, value >>> 0, true);
    }
  }
  return out;
}
