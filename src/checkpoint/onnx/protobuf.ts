/**
 * Protocol-buffer wire format, read in place: a message is walked field by field through a
 * RangeReader, and length-delimited payloads that are not needed (raw tensor data) are skipped by
 * offset, never read. Also the few encoders the ONNX writer needs.
 */
import { InputError } from '../../errors.js';
import type { RangeReader } from '../files.js';

export const WIRE_VARINT = 0;
export const WIRE_FIXED64 = 1;
export const WIRE_LEN = 2;
export const WIRE_FIXED32 = 5;

/** One field of a message: the tag starts at `start`, the payload is [dataStart, end). */
export interface FieldSpan {
  field: number;
  wire: number;
  start: number;
  dataStart: number;
  end: number;
  /** The value of a varint field (exact up to 2^53; larger values are refused). */
  value: number;
}

const BLOCK = 64 * 1024;
/**
 * Fields one message may hold: a large graph has a few hundred thousand (nodes, initializers,
 * value_info); millions of tiny unknown fields would cost a gigabyte of spans to walk.
 */
export const MAX_FIELDS = 1_000_000;

/**
 * Reads a protobuf file through a block cache, so that walking small messages costs few reads while
 * large payloads are skipped without reading them.
 */
export class ProtoCursor {
  private block: Uint8Array = new Uint8Array(0);
  private blockStart = 0;

  constructor(
    private readonly reader: RangeReader,
    readonly file: string,
  ) {}

  get size(): number {
    return this.reader.size;
  }

  /** Bytes [start, end) of the file: a view of the cache when they lie inside one block. */
  async bytes(start: number, end: number): Promise<Uint8Array> {
    if (start < 0 || end > this.reader.size || start > end)
      throw new InputError(this.file, `is truncated: bytes ${start}..${end} lie beyond its ${this.reader.size} bytes`);
    if (start >= this.blockStart && end <= this.blockStart + this.block.byteLength) {
      return this.block.subarray(start - this.blockStart, end - this.blockStart);
    }
    if (end - start > BLOCK / 2) return this.reader.read(start, end - start);
    const blockEnd = Math.min(this.reader.size, start + BLOCK);
    this.block = await this.reader.read(start, blockEnd - start);
    this.blockStart = start;
    return this.block.subarray(0, end - start);
  }

  /** The fields of the message occupying [start, end), in file order. */
  async fields(start: number, end: number, what: string): Promise<FieldSpan[]> {
    const out: FieldSpan[] = [];
    let at = start;
    while (at < end) {
      if (out.length >= MAX_FIELDS) {
        throw new InputError(this.file, `is not an ONNX model soup reads: the ${what} holds more than ${MAX_FIELDS} fields (padded or hostile file)`);
      }
      const tagStart = at;
      const tag = await this.varint(at, end, what);
      at = tag.next;
      const field = Math.floor(tag.value / 8);
      const wire = tag.value % 8;
      if (field === 0) throw this.malformed(what, tagStart, 'field number 0');
      let dataStart = at;
      let dataEnd: number;
      let value = 0;
      switch (wire) {
        case WIRE_VARINT: {
          const v = await this.varint(at, end, what);
          value = v.value;
          dataEnd = v.next;
          break;
        }
        case WIRE_FIXED64:
          dataEnd = at + 8;
          break;
        case WIRE_FIXED32:
          dataEnd = at + 4;
          break;
        case WIRE_LEN: {
          const length = await this.varint(at, end, what);
          dataStart = length.next;
          dataEnd = dataStart + length.value;
          break;
        }
        default:
          throw this.malformed(what, tagStart, `wire type ${wire}`);
      }
      if (dataEnd > end) {
        throw new InputError(
          this.file,
          `is truncated or not an ONNX model: a field of the ${what} at byte ${tagStart} runs past the end (${dataEnd} > ${end})`,
        );
      }
      out.push({ field, wire, start: tagStart, dataStart, end: dataEnd, value });
      at = dataEnd;
    }
    return out;
  }

  /** Reads a varint at `at`; values beyond 2^53 (negative int64s included) are refused as not exact. */
  async varint(at: number, end: number, what: string): Promise<{ value: number; next: number }> {
    const bytes = await this.bytes(at, Math.min(end, at + 10));
    const decoded = decodeVarint(bytes, 0);
    if (decoded === undefined) throw this.malformed(what, at, 'a varint that does not end');
    return { value: decoded.value, next: at + decoded.next };
  }

  async string(span: FieldSpan, what: string): Promise<string> {
    const bytes = await this.bytes(span.dataStart, span.end);
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    } catch (error) {
      throw new InputError(this.file, `a string in the ${what} is not valid UTF-8`, { cause: error });
    }
  }

  private malformed(what: string, at: number, problem: string): InputError {
    return new InputError(this.file, `is not an ONNX model (protobuf): ${problem} in the ${what} at byte ${at}`);
  }
}

/**
 * A varint at `offset`: its value (as a double; above 2^53 becomes Infinity so callers refuse it) and
 * the offset after it; undefined when the bytes end first.
 */
export function decodeVarint(bytes: Uint8Array, offset: number): { value: number; next: number } | undefined {
  let value = 0;
  let scale = 1;
  for (let i = offset; i < bytes.length && i < offset + 10; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return { value: value > Number.MAX_SAFE_INTEGER ? Infinity : value, next: i + 1 };
  }
  return undefined;
}

/** Decodes a varint as a signed 64-bit integer (two's complement), for int64_data. */
export function decodeVarintBig(bytes: Uint8Array, offset: number): { value: bigint; next: number } | undefined {
  let value = 0n;
  let shift = 0n;
  for (let i = offset; i < bytes.length && i < offset + 10; i++) {
    const byte = bytes[i]!;
    value |= BigInt(byte & 0x7f) << shift;
    shift += 7n;
    if ((byte & 0x80) === 0) return { value: BigInt.asIntN(64, value), next: i + 1 };
  }
  return undefined;
}

export function encodeVarint(value: number | bigint): Uint8Array {
  let v = BigInt.asUintN(64, BigInt(value));
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Uint8Array.from(out);
}

export function varintSize(value: number): number {
  let size = 1;
  while (value >= 128) {
    value = Math.floor(value / 128);
    size++;
  }
  return size;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.byteLength;
  }
  return out;
}

/** A length-delimited field (message, string or bytes). */
export function lenField(field: number, payload: Uint8Array | string): Uint8Array {
  const bytes = typeof payload === 'string' ? new TextEncoder().encode(payload) : payload;
  return concatBytes([encodeVarint(field * 8 + WIRE_LEN), encodeVarint(bytes.byteLength), bytes]);
}

/** The tag and length prefix of a length-delimited field whose payload follows separately. */
export function lenHeader(field: number, length: number): Uint8Array {
  return concatBytes([encodeVarint(field * 8 + WIRE_LEN), encodeVarint(length)]);
}

export function varintField(field: number, value: number | bigint): Uint8Array {
  return concatBytes([encodeVarint(field * 8 + WIRE_VARINT), encodeVarint(value)]);
}

/** Repeated int64 values as one packed field. */
export function packedVarints(field: number, values: readonly (number | bigint)[]): Uint8Array {
  return lenField(field, concatBytes(values.map((value) => encodeVarint(value))));
}
