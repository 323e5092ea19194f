import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { zipSync } from 'fflate';
import { loadDataset } from '../../src/data/dataset.js';
import { encodeNpy } from '../../src/data/npy.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();

/** A valid x/y .npz whose x values are 0..95, stored or deflated. */
function npz(level: 0 | 6): Buffer {
  const x = Float32Array.from({ length: 96 }, (_, i) => i);
  return Buffer.from(zipSync({ 'x.npy': encodeNpy(x, [6, 16]), 'y.npy': encodeNpy(Int32Array.from([0, 1, 2, 0, 1, 2]), [6]) }, { level }));
}

/** Flips a byte of x's values (stored) without touching the zip's sizes, as bit rot does. */
function flipStoredValue(bytes: Buffer): Buffer {
  const copy = Buffer.from(bytes);
  const data = copy.indexOf('NUMPY') + 128 + 20;
  copy[data] = copy[data]! ^ 0x40;
  return copy;
}

describe('.npz integrity', () => {
  it('refuses an array whose bytes do not match the zip CRC-32, read in memory', async () => {
    const file = path.join(dir, 'flipped.npz');
    await writeFile(file, flipStoredValue(npz(0)));
    await assert.rejects(loadDataset(file), {
      message: /^.*flipped\.npz:x\.npy: CRC-32 check failed \(the data sums to [0-9a-f]{8}, the zip says [0-9a-f]{8}\): the file is corrupt$/,
    });
  });

  it('refuses the same file when it is read from disk by rows, once the last row is read', async () => {
    const file = path.join(dir, 'flipped-large.npz');
    await writeFile(file, flipStoredValue(npz(0)));
    const dataset = await loadDataset(file, {}, { inMemoryBytes: 0 });
    await dataset.read(0, 3);
    await assert.rejects(dataset.read(3, 3), { message: /flipped-large\.npz:x\.npy: CRC-32 check failed/ });
  });

  it('reads an intact stored and compressed .npz, in memory and by rows', async () => {
    for (const level of [0, 6] as const) {
      const file = path.join(dir, `intact-${level}.npz`);
      await writeFile(file, npz(level));
      for (const inMemoryBytes of [undefined, 0]) {
        const dataset = await loadDataset(file, {}, { inMemoryBytes });
        const values = await dataset.read(0, 6);
        assert.deepEqual(Array.from(values.subarray(0, 3)), [0, 1, 2]);
      }
    }
  });

  it('refuses an .npy header that gives a key twice, where numpy would keep the last and soup the first', async () => {
    const x = Buffer.from(encodeNpy(new Float32Array(4), [1, 4]));
    const header = x.toString('latin1', 10, 128);
    const twice = header.replace("'shape': (1, 4), }", "'shape': (1, 4), 'shape': (2, 2),}");
    x.write(`${twice.padEnd(header.length - 1, ' ')}\n`, 10, 'latin1');
    const file = path.join(dir, 'twice.npz');
    await writeFile(file, zipSync({ 'x.npy': x, 'y.npy': encodeNpy(Int32Array.from([0]), [1]) }));
    await assert.rejects(loadDataset(file), { message: `${file}:x.npy: malformed .npy header: the key 'shape' is given twice` });
  });
});
