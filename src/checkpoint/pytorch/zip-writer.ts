import type { FileHandle } from 'node:fs/promises';
import * as zlib from 'node:zlib';
import { writeAll } from '../safetensors.js';
import {
  CENTRAL_HEADER_BYTES,
  CENTRAL_SIGNATURE,
  ENTRY_LIMIT,
  EOCD_SIGNATURE,
  LOCAL_HEADER_BYTES,
  LOCAL_SIGNATURE,
  ZIP32_LIMIT,
  ZIP64_EOCD_SIGNATURE,
  ZIP64_EXTRA_ID,
  ZIP64_LOCATOR_SIGNATURE,
} from './zip-format.js';

/** Where torch.load (and mmap=True) expects record data: torch's writer aligns every record to 64 bytes. */
export const RECORD_ALIGNMENT = 64;
/** 1980-01-01 00:00 in DOS format: a fixed timestamp, so the same soup is the same bytes. */
const DOS_DATE = 0x21;
const UTF8_NAMES = 0x800;
/** Extra field torch's writer pads records with ("FB" + length + 'Z' bytes); readers skip unknown ids. */
const PADDING_ID = 0x4246;

type Crc32 = (data: Uint8Array, value?: number) => number;

/** node:zlib has crc32 from Node 20.15 on; earlier Node 20 releases get the table version. */
const crc32: Crc32 = (zlib as { crc32?: Crc32 }).crc32 ?? tableCrc32();

function tableCrc32(): Crc32 {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return (data, value = 0) => {
    let c = ~value >>> 0;
    for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
    return ~c >>> 0;
  };
}

export interface ZipWriterOptions {
  /**
   * Sizes and offsets at or above this go into ZIP64 fields (default: what 32 bits cannot hold).
   * Tests lower it to exercise the ZIP64 layout without writing 4 GB.
   */
  zip64Threshold?: number;
}

interface Entry {
  name: Uint8Array;
  offset: number;
  size: number;
  crc: number;
}

/**
 * Writes a zip of stored (uncompressed) records to a file, record by record: each record's data is
 * streamed in chunks and its CRC-32 computed on the way, then patched into the local header, which
 * already holds the size (known in advance). No data descriptors, so readers that take sizes from
 * local headers work too. Only the central directory's entries are kept in memory.
 */
export class ZipWriter {
  private position = 0;
  private readonly entries: Entry[] = [];
  private readonly threshold: number;

  constructor(
    private readonly handle: FileHandle,
    private readonly file: string,
    options: ZipWriterOptions = {},
  ) {
    this.threshold = Math.min(options.zip64Threshold ?? ZIP32_LIMIT, ZIP32_LIMIT);
  }

  /** Bytes written so far. */
  get bytes(): number {
    return this.position;
  }

  async addRecord(name: string, data: Uint8Array): Promise<void> {
    await this.addStream(name, data.byteLength, [data]);
  }

  /** A record of exactly `size` bytes from `chunks`, each written before the next is requested. */
  async addStream(name: string, size: number, chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<void> {
    const entry: Entry = { name: new TextEncoder().encode(name), offset: this.position, size, crc: 0 };
    const header = this.localHeader(entry);
    await this.write(header);
    let written = 0;
    let crc = 0;
    for await (const chunk of chunks) {
      crc = crc32(chunk, crc);
      written += chunk.byteLength;
      if (written > size) break;
      await this.write(chunk);
    }
    if (written !== size) throw new Error(`internal: record ${name} produced ${written} bytes, expected ${size}`);
    entry.crc = crc;
    const crcField = new Uint8Array(4);
    new DataView(crcField.buffer).setUint32(0, crc, true);
    await writeAll(this.handle, this.file, crcField, entry.offset + 14);
    this.entries.push(entry);
  }

  /** Writes the central directory (and its ZIP64 records where needed); returns the file's size. */
  async finish(): Promise<number> {
    const directoryOffset = this.position;
    for (const entry of this.entries) await this.write(this.centralHeader(entry));
    const directorySize = this.position - directoryOffset;
    const count = this.entries.length;
    const zip64 = this.big(directoryOffset) || this.big(directorySize) || count >= Math.min(ENTRY_LIMIT, this.threshold);
    if (zip64) {
      const recordOffset = this.position;
      const record = new Fields(56);
      record.u32(ZIP64_EOCD_SIGNATURE).u64(44).u16(45).u16(45).u32(0).u32(0).u64(count).u64(count).u64(directorySize).u64(directoryOffset);
      const locator = new Fields(20);
      locator.u32(ZIP64_LOCATOR_SIGNATURE).u32(0).u64(recordOffset).u32(1);
      await this.write(record.bytes);
      await this.write(locator.bytes);
    }
    const end = new Fields(22);
    end
      .u32(EOCD_SIGNATURE)
      .u16(0)
      .u16(0)
      .u16(zip64 ? ENTRY_LIMIT : count)
      .u16(zip64 ? ENTRY_LIMIT : count)
      .u32(zip64 ? ZIP32_LIMIT : directorySize)
      .u32(zip64 ? ZIP32_LIMIT : directoryOffset)
      .u16(0);
    await this.write(end.bytes);
    return this.position;
  }

  private big(value: number): boolean {
    return value >= this.threshold;
  }

  /**
   * The local header, with the CRC left at 0 until the data is written. Its extra field holds the
   * ZIP64 sizes when they need it, then torch's padding, so that the data starts on a 64-byte boundary.
   */
  private localHeader(entry: Entry): Uint8Array {
    const zip64 = this.big(entry.size);
    const zip64Length = zip64 ? 4 + 16 : 0;
    const start = entry.offset + LOCAL_HEADER_BYTES + entry.name.length + zip64Length + 4;
    const padding = (RECORD_ALIGNMENT - (start % RECORD_ALIGNMENT)) % RECORD_ALIGNMENT;
    const extraLength = zip64Length + 4 + padding;
    const header = new Fields(LOCAL_HEADER_BYTES + entry.name.length + extraLength);
    const size32 = zip64 ? ZIP32_LIMIT : entry.size;
    header
      .u32(LOCAL_SIGNATURE)
      .u16(zip64 ? 45 : 20)
      .u16(UTF8_NAMES)
      .u16(0)
      .u16(0)
      .u16(DOS_DATE)
      .u32(0)
      .u32(size32)
      .u32(size32);
    header.u16(entry.name.length).u16(extraLength).raw(entry.name);
    if (zip64) header.u16(ZIP64_EXTRA_ID).u16(16).u64(entry.size).u64(entry.size);
    header.u16(PADDING_ID).u16(padding).raw(new Uint8Array(padding).fill(0x5a));
    return header.bytes;
  }

  private centralHeader(entry: Entry): Uint8Array {
    const bigSize = this.big(entry.size);
    const bigOffset = this.big(entry.offset);
    const zip64Fields = (bigSize ? 2 : 0) + (bigOffset ? 1 : 0);
    const extraLength = zip64Fields > 0 ? 4 + 8 * zip64Fields : 0;
    const header = new Fields(CENTRAL_HEADER_BYTES + entry.name.length + extraLength);
    const size32 = bigSize ? ZIP32_LIMIT : entry.size;
    const version = zip64Fields > 0 ? 45 : 20;
    header.u32(CENTRAL_SIGNATURE).u16(version).u16(version).u16(UTF8_NAMES).u16(0).u16(0).u16(DOS_DATE);
    header.u32(entry.crc).u32(size32).u32(size32).u16(entry.name.length).u16(extraLength).u16(0).u16(0).u16(0).u32(0);
    header.u32(bigOffset ? ZIP32_LIMIT : entry.offset).raw(entry.name);
    if (zip64Fields > 0) {
      header.u16(ZIP64_EXTRA_ID).u16(8 * zip64Fields);
      if (bigSize) header.u64(entry.size).u64(entry.size);
      if (bigOffset) header.u64(entry.offset);
    }
    return header.bytes;
  }

  private async write(bytes: Uint8Array): Promise<void> {
    await writeAll(this.handle, this.file, bytes, this.position);
    this.position += bytes.byteLength;
  }
}

/** Little-endian fields written one after another into a buffer of known size. */
class Fields {
  readonly bytes: Uint8Array;
  private readonly view: DataView;
  private at = 0;

  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.view = new DataView(this.bytes.buffer);
  }

  u16(value: number): this {
    this.view.setUint16(this.at, value, true);
    this.at += 2;
    return this;
  }

  u32(value: number): this {
    this.view.setUint32(this.at, value, true);
    this.at += 4;
    return this;
  }

  u64(value: number): this {
    this.view.setBigUint64(this.at, BigInt(value), true);
    this.at += 8;
    return this;
  }

  raw(data: Uint8Array): this {
    this.bytes.set(data, this.at);
    this.at += data.length;
    return this;
  }
}
