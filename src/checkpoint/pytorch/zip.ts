import { InputError } from '../../errors.js';
import type { RangeReader } from '../files.js';
import {
  CENTRAL_HEADER_BYTES,
  CENTRAL_SIGNATURE,
  ENTRY_LIMIT,
  EOCD_BYTES,
  EOCD_SIGNATURE,
  LOCAL_HEADER_BYTES,
  LOCAL_SIGNATURE,
  ZIP32_LIMIT,
  ZIP64_EOCD_SIGNATURE,
  ZIP64_EXTRA_ID,
  ZIP64_LOCATOR_SIGNATURE,
} from './zip-format.js';

/**
 * The zip container of torch.save (PyTorch >= 1.6), read from its central directory: torch writes
 * local headers with sizes 0 and a data descriptor, so only the directory has the sizes. Records
 * are read by offset, never the whole file, so archives over 2 GiB work.
 */

const MAX_COMMENT = 0xffff;
/** A directory larger than this is not a checkpoint's: about 1 million records. */
export const MAX_DIRECTORY_BYTES = 128 * 1024 * 1024;
const MAX_RECORDS = 2_000_000;

export interface ZipRecord {
  /** Full name inside the archive, prefix included. */
  name: string;
  /** 0 stored, 8 deflated, ... */
  method: number;
  size: number;
  compressedSize: number;
  localHeaderOffset: number;
  flags: number;
}

export class ZipArchive {
  private readonly dataStarts = new Map<string, number>();

  private constructor(
    readonly file: string,
    private readonly reader: RangeReader,
    readonly records: ReadonlyMap<string, ZipRecord>,
  ) {}

  /** Reads the central directory and checks every record lies inside the file. */
  static async open(file: string, reader: RangeReader): Promise<ZipArchive> {
    const size = reader.size;
    if (size < EOCD_BYTES) throw notZip(file, `the file is ${size} bytes, too short for a zip archive`);
    const tailLength = Math.min(size, EOCD_BYTES + MAX_COMMENT);
    const tailStart = size - tailLength;
    const tail = await reader.read(tailStart, tailLength);
    const view = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
    let eocd = -1;
    for (let at = tail.length - EOCD_BYTES; at >= 0; at--) {
      if (view.getUint32(at, true) === EOCD_SIGNATURE && at + EOCD_BYTES + view.getUint16(at + 20, true) === tail.length) {
        eocd = at;
        break;
      }
    }
    if (eocd < 0) throw notZip(file, 'no zip end-of-directory record (truncated, or not a torch.save file)');
    let count = view.getUint16(eocd + 10, true);
    let directorySize = view.getUint32(eocd + 12, true);
    let directoryOffset = view.getUint32(eocd + 16, true);
    if (count === ENTRY_LIMIT || directorySize === ZIP32_LIMIT || directoryOffset === ZIP32_LIMIT) {
      const locatorAt = tailStart + eocd - 20;
      if (locatorAt < 0) throw malformed(file, 'ZIP64 fields without a ZIP64 locator');
      const locator = dataView(await reader.read(locatorAt, 20));
      if (locator.getUint32(0, true) !== ZIP64_LOCATOR_SIGNATURE) throw malformed(file, 'ZIP64 fields without a ZIP64 locator');
      const recordAt = readU64(locator, 8, file, 'ZIP64 end record offset');
      if (recordAt + 56 > size) throw malformed(file, 'ZIP64 end record lies outside the file');
      const record = dataView(await reader.read(recordAt, 56));
      if (record.getUint32(0, true) !== ZIP64_EOCD_SIGNATURE) throw malformed(file, 'ZIP64 end record has a wrong signature');
      count = readU64(record, 32, file, 'record count');
      directorySize = readU64(record, 40, file, 'directory size');
      directoryOffset = readU64(record, 48, file, 'directory offset');
    }
    if (count > MAX_RECORDS) throw malformed(file, `claims ${count} records, more than the ${MAX_RECORDS} allowed`);
    if (directorySize > MAX_DIRECTORY_BYTES)
      throw malformed(file, `central directory of ${directorySize} bytes is larger than the ${MAX_DIRECTORY_BYTES}-byte limit`);
    if (directoryOffset + directorySize > size) throw malformed(file, 'central directory runs past the end of the file (truncated?)');
    const directory = directorySize === 0 ? new Uint8Array(0) : await reader.read(directoryOffset, directorySize);
    const records = parseDirectory(file, directory, count, directoryOffset);
    return new ZipArchive(file, reader, records);
  }

  /** Where a record's bytes start, from its local header (whose own sizes torch leaves at 0). */
  async dataStart(record: ZipRecord): Promise<number> {
    const known = this.dataStarts.get(record.name);
    if (known !== undefined) return known;
    if (record.localHeaderOffset + LOCAL_HEADER_BYTES > this.reader.size) throw malformed(this.file, `record ${record.name} starts past the end of the file`);
    const header = dataView(await this.reader.read(record.localHeaderOffset, LOCAL_HEADER_BYTES));
    if (header.getUint32(0, true) !== LOCAL_SIGNATURE) throw malformed(this.file, `record ${record.name} has no local header where the directory says`);
    const start = record.localHeaderOffset + LOCAL_HEADER_BYTES + header.getUint16(26, true) + header.getUint16(28, true);
    if (start + record.size > this.reader.size) {
      throw new InputError(this.file, `record ${record.name} (${record.size} bytes) runs past the end of the file (truncated?)`);
    }
    this.dataStarts.set(record.name, start);
    return start;
  }

  /** A whole small record (data.pkl, version, byteorder), stored uncompressed. */
  async readRecord(record: ZipRecord, limit: number): Promise<Uint8Array> {
    checkStored(this.file, record);
    if (record.size > limit) throw new InputError(this.file, `record ${record.name} is ${record.size} bytes, more than the ${limit} allowed for it`);
    if (record.size === 0) return new Uint8Array(0);
    return this.reader.read(await this.dataStart(record), record.size);
  }
}

/** Tensor data is read in place: a compressed record cannot be. */
export function checkStored(file: string, record: ZipRecord): void {
  if ((record.flags & 1) !== 0) throw new InputError(file, `record ${record.name} is encrypted`);
  if (record.method !== 0) {
    throw new InputError(file, `record ${record.name} is compressed (zip method ${record.method}); torch.save stores records uncompressed`, {
      hint: 'load it in Python and save it again with torch.save, or unzip and re-zip it with -0 (no compression)',
    });
  }
  if (record.compressedSize !== record.size)
    throw malformed(file, `record ${record.name} is stored with ${record.compressedSize} bytes but claims ${record.size}`);
}

function parseDirectory(file: string, bytes: Uint8Array, count: number, directoryOffset: number): Map<string, ZipRecord> {
  const view = dataView(bytes);
  const records = new Map<string, ZipRecord>();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_HEADER_BYTES > bytes.length || view.getUint32(at, true) !== CENTRAL_SIGNATURE)
      throw malformed(file, `central directory entry ${i} is malformed`);
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    let compressedSize = view.getUint32(at + 20, true);
    let size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    let localHeaderOffset = view.getUint32(at + 42, true);
    const end = at + CENTRAL_HEADER_BYTES + nameLength + extraLength + commentLength;
    if (end > bytes.length) throw malformed(file, `central directory entry ${i} runs past the directory`);
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(at + CENTRAL_HEADER_BYTES, at + CENTRAL_HEADER_BYTES + nameLength));
    } catch {
      throw malformed(file, `central directory entry ${i} has a name that is not UTF-8`);
    }
    // ZIP64 extended information: 8-byte values, present only for the fields that overflowed.
    let extra = at + CENTRAL_HEADER_BYTES + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const length = view.getUint16(extra + 2, true);
      if (extra + 4 + length > extraEnd) throw malformed(file, `record ${name} has a malformed extra field`);
      if (id === ZIP64_EXTRA_ID) {
        let field = extra + 4;
        const take = (what: string): number => {
          if (field + 8 > extra + 4 + length) throw malformed(file, `record ${name} has a short ZIP64 field`);
          const value = readU64(view, field, file, what);
          field += 8;
          return value;
        };
        if (size === ZIP32_LIMIT) size = take('size');
        if (compressedSize === ZIP32_LIMIT) compressedSize = take('compressed size');
        if (localHeaderOffset === ZIP32_LIMIT) localHeaderOffset = take('offset');
      }
      extra += 4 + length;
    }
    if (localHeaderOffset >= directoryOffset) throw malformed(file, `record ${name} starts inside or after the central directory`);
    if (records.has(name)) throw malformed(file, `record ${name} appears twice`);
    records.set(name, { name, method, size, compressedSize, localHeaderOffset, flags });
    at = end;
  }
  return records;
}

function readU64(view: DataView, at: number, file: string, what: string): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed(file, `${what} ${value} is out of range`);
  return Number(value);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function notZip(file: string, why: string): InputError {
  return new InputError(file, `not a PyTorch checkpoint: ${why}`);
}

function malformed(file: string, why: string): InputError {
  return new InputError(file, `malformed zip archive: ${why}`);
}
