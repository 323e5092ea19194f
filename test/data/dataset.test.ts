import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { zipSync } from 'fflate';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { loadDataset } from '../../src/data/dataset.js';
import { encodeIdxU8 } from '../../src/data/idx.js';
import { encodeNpy, parseNpy } from '../../src/data/npy.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();
// Decoded image folders are cached; keep the cache out of the user's home.
process.env.XDG_CACHE_HOME = await tempDir('soup-cache-');
const fixtures = new URL('../../../fixtures/data/', import.meta.url).pathname;

async function rejectsWith(target: string, pattern: RegExp): Promise<void> {
  await assert.rejects(loadDataset(target), (error: unknown) => {
    assert.ok(error instanceof InputError, String(error));
    assert.match(error.message, pattern);
    return true;
  });
}

function npzFile(arrays: Record<string, Uint8Array>, compress = true): Uint8Array {
  return zipSync(Object.fromEntries(Object.entries(arrays).map(([name, data]) => [`${name}.npy`, data])), { level: compress ? 6 : 0 });
}

function png(width: number, height: number, pixel: (x: number, y: number) => [number, number, number]): Buffer {
  const image = new PNG({ width, height });
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, b] = pixel(x, y);
      image.data.set([r, g, b, 255], 4 * (y * width + x));
    }
  }
  return PNG.sync.write(image);
}

describe('npy', () => {
  it('round-trips arrays and reads int64 labels as integers', () => {
    const labels = parseNpy(encodeNpy(BigInt64Array.from([3n, 0n, 9n]), [3]), 'y.npy');
    assert.deepEqual([...labels.values], [3, 0, 9]);
    assert.equal(labels.integer, true);
    const images = parseNpy(encodeNpy(Uint8Array.from([1, 2, 3, 4]), [1, 2, 2]), 'x.npy');
    assert.deepEqual(images.shape, [1, 2, 2]);
  });

  it('refuses truncated data and big-endian dtypes', () => {
    const whole = encodeNpy(Float32Array.from([1, 2, 3]), [3]);
    assert.throws(() => parseNpy(whole.subarray(0, whole.length - 2), 'x.npy'), /truncated: shape \(3\) of <f4 needs 12 bytes, the file has 10/);
    const bigEndian = Buffer.from(encodeNpy(Float32Array.from([1]), [1]));
    bigEndian.write('>f4', bigEndian.indexOf('<f4'));
    assert.throws(() => parseNpy(bigEndian, 'x.npy'), /dtype >f4 is not supported/);
  });
});

describe('loadDataset', () => {
  it('reads the shipped IDX validation folder with the scale from its dataset.json', async () => {
    const val = await loadDataset(path.join(fixtures, 'val'));
    assert.equal(val.format, 'idx');
    assert.equal(val.n, 2000);
    assert.deepEqual(val.sampleShape, [28, 28]);
    assert.equal(val.scale, 1 / 255);
    assert.ok((await val.read(0, val.n)).every((v) => v >= 0 && v <= 1));
    assert.ok(val.y.every((label) => label >= 0 && label < 10));
  });

  it('reads the shipped .npz test set, whose labels are int64', async () => {
    const test = await loadDataset(path.join(fixtures, 'test.npz'));
    assert.equal(test.format, 'npz');
    assert.equal(test.name, 'test');
    assert.equal(test.n, 2000);
    assert.equal((await test.read(0, test.n)).length, 2000 * 784);
  });

  it('reads raw (not gzipped) IDX files and an uncompressed .npz', async () => {
    const folder = path.join(dir, 'raw-idx');
    await mkdir(folder);
    await writeFile(path.join(folder, 'images-idx3-ubyte'), encodeIdxU8(Uint8Array.from([0, 10, 20, 30, 40, 50, 60, 70]), [2, 2, 2]));
    await writeFile(path.join(folder, 'labels-idx1-ubyte'), encodeIdxU8(Uint8Array.from([1, 0]), [2]));
    const idx = await loadDataset(folder);
    assert.deepEqual([...(await idx.read(0, 2))], [0, 10, 20, 30, 40, 50, 60, 70]);
    assert.deepEqual([...idx.y], [1, 0]);
    const npz = path.join(dir, 'stored.npz');
    await writeFile(npz, npzFile({ x: encodeNpy(Float32Array.from([0.5, 1.5]), [2, 1]), y: encodeNpy(Int32Array.from([2, 3]), [2]) }, false));
    const stored = await loadDataset(npz);
    assert.deepEqual([...(await stored.read(0, 2))], [0.5, 1.5]);
  });

  it('reads a CSV with a label column anywhere', async () => {
    const file = path.join(dir, 'points.csv');
    await writeFile(file, 'f1,label,f2\n0.5,1,2\n-1,0,3.25\n');
    const csv = await loadDataset(file);
    assert.deepEqual([...(await csv.read(0, 2))], [0.5, 2, -1, 3.25]);
    assert.deepEqual([...csv.y], [1, 0]);
    assert.deepEqual(csv.sampleShape, [2]);
  });

  it('reads a folder of class folders of PNG and JPEG images, classes in name order', async () => {
    const folder = path.join(dir, 'images');
    await mkdir(path.join(folder, 'cat'), { recursive: true });
    await mkdir(path.join(folder, 'ant'), { recursive: true });
    await writeFile(
      path.join(folder, 'cat', '1.png'),
      png(2, 2, (x) => [x * 200, x * 200, x * 200]),
    );
    const grey = jpeg.encode({ data: Buffer.alloc(2 * 2 * 4, 128), width: 2, height: 2 }, 100).data;
    await writeFile(path.join(folder, 'ant', '1.jpg'), grey);
    const images = await loadDataset(folder);
    assert.equal(images.format, 'images');
    assert.deepEqual(images.sampleShape, [2, 2, 1], 'grey images give one channel');
    assert.deepEqual([...images.y], [0, 1], 'ant is class 0, cat is class 1');
    assert.deepEqual([...(await images.read(1, 1))], [0, 200, 0, 200]);
    await writeFile(
      path.join(folder, 'cat', '2.png'),
      png(2, 2, () => [255, 0, 0]),
    );
    assert.deepEqual((await loadDataset(folder)).sampleShape, [2, 2, 3], 'one colour image makes them all RGB');
  });

  it('applies --scale and --offset over dataset.json', async () => {
    const file = path.join(dir, 'scaled.csv');
    await writeFile(file, 'label,v\n0,10\n');
    await writeFile(path.join(dir, 'scaled.dataset.json'), '{"scale": 0.1, "offset": 1}');
    assert.deepEqual([...(await (await loadDataset(file)).read(0, 1))], [2]);
    assert.deepEqual([...(await (await loadDataset(file, { scale: 2 })).read(0, 1))], [21]);
  });

  it('refuses images of different sizes, naming the odd one', async () => {
    const folder = path.join(dir, 'sizes');
    await mkdir(path.join(folder, 'a'), { recursive: true });
    await writeFile(
      path.join(folder, 'a', '1.png'),
      png(2, 2, () => [0, 0, 0]),
    );
    await writeFile(
      path.join(folder, 'a', '2.png'),
      png(3, 2, () => [0, 0, 0]),
    );
    await rejectsWith(folder, /a\/2\.png: image is 3x2, but .*a\/1\.png is 2x2; all images must have one size/);
  });

  it('refuses samples and labels of different counts', async () => {
    const file = path.join(dir, 'counts.npz');
    await writeFile(file, npzFile({ x: encodeNpy(Uint8Array.from([1, 2, 3]), [3, 1]), y: encodeNpy(Int32Array.from([0, 1]), [2]) }));
    await rejectsWith(file, /counts\.npz: 3 samples but 2 labels; they must be as many/);
  });

  it('refuses an empty data set, a missing label column, fractional labels and a truncated npz', async () => {
    const empty = path.join(dir, 'empty.csv');
    await writeFile(empty, 'label,a\n');
    await rejectsWith(empty, /empty\.csv: the data set is empty/);
    const noLabel = path.join(dir, 'nolabel.csv');
    await writeFile(noLabel, 'a,b\n1,2\n');
    await rejectsWith(noLabel, /nolabel\.csv: no "label" column \(columns: a, b\)/);
    const fractional = path.join(dir, 'fractional.npz');
    await writeFile(fractional, npzFile({ x: encodeNpy(Uint8Array.from([1]), [1, 1]), y: encodeNpy(Float32Array.from([0.5]), [1]) }));
    await rejectsWith(fractional, /label 0\.5 of sample 0 is not an integer class index/);
    const whole = npzFile({ x: encodeNpy(Uint8Array.from([1]), [1, 1]), y: encodeNpy(Int32Array.from([0]), [1]) });
    const truncated = path.join(dir, 'truncated.npz');
    await writeFile(truncated, whole.subarray(0, whole.length - 30));
    await rejectsWith(truncated, /truncated\.npz: not a readable \.npz \(zip\) file/);
  });

  it('refuses an IDX folder without exactly one labels file', async () => {
    const folder = path.join(dir, 'idx-no-labels');
    await mkdir(folder);
    await writeFile(path.join(folder, 'images-idx3-ubyte.gz'), gzipSync(encodeIdxU8(new Uint8Array(8), [2, 2, 2])));
    await rejectsWith(folder, /one images file and one labels file; found 1 and 0/);
  });
});

describe('hostile data', () => {
  it('refuses NaN inputs and a scale that overflows, naming the sample or the settings', async () => {
    const file = path.join(dir, 'nan.npz');
    await writeFile(file, npzFile({ x: encodeNpy(Float32Array.from([0, 1, 2, NaN, 4, 5]), [3, 2]), y: encodeNpy(Int32Array.from([0, 1, 0]), [3]) }));
    const dataset = await loadDataset(file);
    await assert.rejects(dataset.read(0, 3), { message: `${file}: sample 1 holds NaN; every input must be a finite number` });
    const finite = path.join(dir, 'finite.npz');
    await writeFile(finite, npzFile({ x: encodeNpy(Float32Array.from([0, 1, 2, 3]), [2, 2]), y: encodeNpy(Int32Array.from([0, 1]), [2]) }));
    await assert.rejects((await loadDataset(finite, { scale: 1e308 })).read(0, 2), {
      message: `${finite}: preprocessing (scale 1e+308) turns a value of sample 0 into Infinity; every input must be a finite number`,
    });
  });

  it('refuses a label of 33,554,432 before anything is sized by it', async () => {
    const file = path.join(dir, 'huge-label.npz');
    await writeFile(file, npzFile({ x: encodeNpy(new Float32Array(6), [3, 2]), y: encodeNpy(Int32Array.from([0, 1, 33_554_432]), [3]) }));
    await rejectsWith(file, /^.*huge-label\.npz: label 33554432 of sample 2 is beyond the 1000000 classes soup handles$/);
  });
});
