import { constants, crc32, deflateRawSync } from 'node:zlib';

/**
 * Decompression bombs built without ever holding what they inflate to: deflate blocks ended by a full
 * flush refer to nothing before them, so one compressed copy of a chunk can be repeated.
 */
export interface Deflated {
  /** Raw deflate data, final block included. */
  deflated: Buffer;
  /** Bytes it inflates to. */
  size: number;
  crc: number;
}

/** `head`, then `repeat` copies of `chunk`, as one raw deflate stream. */
export function repeatedDeflate(head: Uint8Array, chunk: Uint8Array, repeat: number): Deflated {
  const flush = { finishFlush: constants.Z_FULL_FLUSH };
  const block = deflateRawSync(chunk, flush);
  let crc = crc32(head);
  for (let i = 0; i < repeat; i++) crc = crc32(chunk, crc);
  // 0x03 0x00: an empty final block with fixed codes, ending the stream.
  const deflated = Buffer.concat([deflateRawSync(head, flush), ...new Array<Buffer>(repeat).fill(block), Buffer.from([0x03, 0x00])]);
  return { deflated, size: head.length + repeat * chunk.length, crc: crc >>> 0 };
}

/** A gzip file around a raw deflate stream. */
export function gzipOf(data: Deflated): Buffer {
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(data.crc, 0);
  trailer.writeUInt32LE(data.size % 2 ** 32, 4);
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), data.deflated, trailer]);
}

/** A zip of deflated entries, sizes and CRC in the local headers and the central directory (as numpy writes one under 4 GB). */
export function zipOfDeflated(entries: Record<string, Deflated>): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const [name, entry] of Object.entries(entries)) {
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(entry.crc, 14);
    local.writeUInt32LE(entry.deflated.length, 18);
    local.writeUInt32LE(entry.size, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const record = Buffer.alloc(46);
    record.writeUInt32LE(0x02014b50, 0);
    record.writeUInt16LE(20, 4);
    record.writeUInt16LE(20, 6);
    record.writeUInt16LE(8, 10);
    record.writeUInt32LE(entry.crc, 16);
    record.writeUInt32LE(entry.deflated.length, 20);
    record.writeUInt32LE(entry.size, 24);
    record.writeUInt16LE(nameBytes.length, 28);
    record.writeUInt32LE(offset, 42);
    parts.push(local, nameBytes, entry.deflated);
    central.push(record, nameBytes);
    offset += local.length + nameBytes.length + entry.deflated.length;
  }
  const directory = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(central.length / 2, 8);
  end.writeUInt16LE(central.length / 2, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, directory, end]);
}
