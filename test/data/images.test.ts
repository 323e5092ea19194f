import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import sharp from 'sharp';
import { loadDataset, type Dataset } from '../../src/data/dataset.js';
import { InputError } from '../../src/errors.js';
import type { ProgressEvent } from '../../src/progress.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();
const cacheDir = path.join(dir, 'cache');

/** An image file from raw bytes (height x width x channels), as PNG or JPEG. */
async function writeImage(
  file: string,
  width: number,
  height: number,
  channels: 1 | 3 | 4,
  pixel: (x: number, y: number) => number[],
  format: 'png' | 'jpeg' = 'png',
): Promise<string> {
  const raw = Buffer.alloc(width * height * channels);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) raw.set(pixel(x, y), (y * width + x) * channels);
  await mkdir(path.dirname(file), { recursive: true });
  const image = sharp(raw, { raw: { width, height, channels } });
  await writeFile(file, format === 'png' ? await image.png().toBuffer() : await image.jpeg({ quality: 100 }).toBuffer());
  return file;
}

const load = (folder: string, flags = {}, onProgress?: (event: ProgressEvent) => void) => loadDataset(folder, flags, { cacheDir, onProgress });
const all = (dataset: Dataset) => dataset.read(0, dataset.n);

describe('image folders', () => {
  it("gives exactly numpy's ((x * scale) - mean) / std where no resampling happens", async () => {
    const folder = path.join(dir, 'exact');
    const file = await writeImage(path.join(folder, 'a', '1.png'), 5, 4, 3, (x, y) => [
      (x * 53 + y * 31) % 256,
      (x * 17 + y * 101) % 256,
      (x * 7 + y * 13 + 200) % 256,
    ]);
    const steps = { scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };
    const dataset = await load(folder, steps);
    assert.deepEqual(dataset.sampleShape, [4, 5, 3]);
    const ours = Buffer.from((await all(dataset)).buffer).toString('hex');
    const numpy = execFileSync('/usr/bin/python3', [
      '-c',
      'import sys, numpy as np; from PIL import Image\n' +
        'x = np.asarray(Image.open(sys.argv[1]).convert("RGB")).astype(np.float64)\n' +
        'v = (x * (1 / 255) - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])\n' +
        'sys.stdout.write(v.astype("<f4").tobytes().hex())',
      file,
    ]).toString();
    assert.equal(ours, numpy, 'every float32 bit agrees');
  });

  it('converts grey and RGBA images to RGB, drops alpha, and gives one channel only when every image is grey', async () => {
    const folder = path.join(dir, 'channels');
    await writeImage(path.join(folder, 'a', 'grey.png'), 2, 1, 1, (x) => [x === 0 ? 10 : 250]);
    await writeImage(path.join(folder, 'b', 'rgba.png'), 2, 1, 4, (x) => (x === 0 ? [10, 20, 30, 0] : [200, 100, 50, 255]));
    const rgb = await load(folder);
    assert.deepEqual(rgb.sampleShape, [1, 2, 3]);
    assert.deepEqual([...(await all(rgb))], [10, 10, 10, 250, 250, 250, 10, 20, 30, 200, 100, 50]);
    assert.deepEqual([...(await all(await load(folder, { channels: 'bgr' })))], [10, 10, 10, 250, 250, 250, 30, 20, 10, 50, 100, 200]);
    const grey = await load(folder, { channels: 'grey' });
    assert.deepEqual(grey.sampleShape, [1, 2, 1]);
    // PIL's luma: (R * 19595 + G * 38470 + B * 7471 + 0x8000) >> 16
    assert.deepEqual([...(await all(grey))], [10, 250, 18, 124]);
    const greyOnly = path.join(dir, 'grey-only');
    await writeImage(path.join(greyOnly, 'a', '1.png'), 2, 1, 1, () => [77]);
    assert.deepEqual((await load(greyOnly)).sampleShape, [1, 2, 1]);
    assert.deepEqual((await load(greyOnly, { channels: 'rgb' })).sampleShape, [1, 2, 3]);
  });

  it('applies EXIF orientation before anything else', async () => {
    const folder = path.join(dir, 'exif');
    // 8 wide, 4 high: left half red, right half blue; orientation 6 means "rotate 90 degrees clockwise to view".
    const raw = Buffer.alloc(8 * 4 * 3);
    for (let p = 0; p < 32; p++) raw.set(p % 8 < 4 ? [255, 0, 0] : [0, 0, 255], p * 3);
    await mkdir(path.join(folder, 'a'), { recursive: true });
    await writeFile(
      path.join(folder, 'a', 'rotated.jpg'),
      await sharp(raw, { raw: { width: 8, height: 4, channels: 3 } })
        .jpeg({ quality: 100 })
        .withMetadata({ orientation: 6 })
        .toBuffer(),
    );
    const dataset = await load(folder);
    assert.deepEqual(dataset.sampleShape, [8, 4, 3], 'upright, the image is 4 wide and 8 high');
    const x = await all(dataset);
    const at = (row: number, column: number) => [...x.subarray((row * 4 + column) * 3, (row * 4 + column) * 3 + 3)];
    assert.ok(at(1, 1)[0]! > 200 && at(1, 1)[2]! < 50, `top is red: ${at(1, 1)}`);
    assert.ok(at(6, 2)[2]! > 200 && at(6, 2)[0]! < 50, `bottom is blue: ${at(6, 2)}`);
  });

  it('takes images of mixed sizes when resizing and cropping, and refuses them otherwise', async () => {
    const folder = path.join(dir, 'mixed');
    await writeImage(path.join(folder, 'a', 'wide.png'), 40, 20, 3, () => [90, 60, 30]);
    await writeImage(path.join(folder, 'b', 'tall.jpg'), 24, 36, 3, () => [90, 60, 30], 'jpeg');
    await assert.rejects(load(folder), /b\/tall\.jpg: image is 24x36, but .*a\/wide\.png is 40x20; all images must have one size/);
    await assert.rejects(load(folder, { resize: 16 }), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /tall\.jpg: image is 16x24 after resizing, but .*wide\.png is 32x16/);
      assert.equal(error.hint, 'add --crop to cut every image to one size');
      return true;
    });
    const dataset = await load(folder, { resize: 16, crop: 12, interpolation: 'bicubic' });
    assert.deepEqual(dataset.sampleShape, [12, 12, 3]);
    const x = await all(dataset);
    assert.ok(
      x.every((v, i) => Math.abs(v - [90, 60, 30][i % 3]!) <= 1),
      'a flat colour stays that colour through resizing',
    );
    const cropped = await load(folder, { crop: 8 });
    assert.deepEqual(cropped.sampleShape, [8, 8, 3], 'a crop alone also takes any size');
  });

  it('pads a side shorter than the crop with zeros, as torchvision does', async () => {
    const folder = path.join(dir, 'pad');
    await writeImage(path.join(folder, 'a', '1.png'), 2, 1, 1, () => [100]);
    const x = await all(await load(folder, { crop: 3 }));
    // 2x1 in a 3x3 square: column padding 0 before (1 // 2), row padding 1 before.
    assert.deepEqual([...x], [0, 0, 0, 100, 100, 0, 0, 0, 0]);
  });

  it('names a corrupt and a truncated JPEG', async () => {
    const folder = path.join(dir, 'broken');
    const good = await writeImage(path.join(folder, 'a', 'good.jpg'), 16, 16, 3, (x, y) => [x * 16, y * 16, 128], 'jpeg');
    const bytes = await readFile(good);
    await writeFile(path.join(folder, 'a', 'truncated.jpg'), bytes.subarray(0, Math.floor(bytes.length / 2)));
    await assert.rejects(load(folder), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.equal(error.exitCode, 2);
      assert.match(error.message, /a\/truncated\.jpg: cannot decode image: /);
      return true;
    });
    await writeFile(path.join(folder, 'a', 'truncated.jpg'), bytes);
    await writeFile(path.join(folder, 'a', 'zcorrupt.jpg'), Buffer.concat([bytes.subarray(0, 2), Buffer.from('not a jpeg at all')]));
    await assert.rejects(load(folder), /a\/zcorrupt\.jpg: cannot decode image: /);
  });
});

describe('the fixture image folder', () => {
  const fixtureImages = new URL('../../../fixtures/data/images/', import.meta.url).pathname;

  it('gives NCHW batches that are exact transposes of its NHWC batches', async () => {
    const dataset = await load(fixtureImages);
    assert.deepEqual(dataset.sampleShape, [28, 28, 3]);
    const nhwc = await dataset.read(0, dataset.n, dataset.fitTo([28, 28, 3]));
    let batches = 0;
    for await (const batch of dataset.batches(8, dataset.fitTo([3, 28, 28]))) {
      batches++;
      for (let s = 0; s < batch.count; s++) {
        for (let c = 0; c < 3; c++) {
          for (let p = 0; p < 784; p++) {
            if (batch.x[(s * 3 + c) * 784 + p] !== nhwc[((batch.start + s) * 784 + p) * 3 + c])
              assert.fail(`sample ${batch.start + s}, channel ${c}, pixel ${p} differs`);
          }
        }
      }
      assert.deepEqual([...batch.y], [...dataset.y.subarray(batch.start, batch.start + batch.count)]);
    }
    assert.equal(batches, 4, '30 images in batches of 8');
  });
});

describe('the decoded-image cache', () => {
  it('decodes once, then hits; misses on a changed file and on changed image steps, not on changed value steps', async () => {
    const folder = path.join(dir, 'cached');
    await writeImage(path.join(folder, 'a', '1.png'), 4, 4, 3, () => [1, 2, 3]);
    const second = await writeImage(path.join(folder, 'b', '2.png'), 4, 4, 3, () => [4, 5, 6]);
    const events: ProgressEvent[] = [];
    const first = await load(folder, {}, (event) => events.push(event));
    assert.equal(first.cache?.state, 'built');
    assert.equal(first.cache?.bytes, 2 * 4 * 4 * 3);
    assert.ok(first.cache!.file.startsWith(cacheDir));
    assert.deepEqual(events.at(-1), { kind: 'decode', done: 2, total: 2 });
    const decoded = events.length;
    const hit = await load(folder, { scale: 2, mean: [1, 1, 1] }, (event) => events.push(event));
    assert.equal(hit.cache?.state, 'hit', 'value steps are applied per batch, so the bytes are still valid');
    assert.equal(events.length, decoded, 'a hit decodes nothing');
    assert.deepEqual([...(await hit.read(1, 1)).subarray(0, 3)], [7, 9, 11]);
    await writeImage(second, 4, 4, 3, () => [40, 50, 60]);
    await utimes(second, new Date(), new Date(Date.now() + 5000));
    const changed = await load(folder);
    assert.equal(changed.cache?.state, 'built', 'a changed file is decoded again');
    assert.deepEqual([...(await changed.read(1, 1)).subarray(0, 3)], [40, 50, 60]);
    assert.equal((await load(folder)).cache?.state, 'hit');
    const cropped = await load(folder, { crop: 2 });
    assert.equal(cropped.cache?.state, 'built', 'other image steps are another cache');
    assert.notEqual(cropped.cache?.file, changed.cache?.file);
  });
});

describe('hostile image folders', () => {
  it('skips a dangling symlink beside the class folders', async () => {
    const folder = path.join(dir, 'dangling');
    await writeImage(path.join(folder, 'a', '1.png'), 2, 2, 1, () => [7]);
    await symlink(path.join(dir, 'no-such-folder'), path.join(folder, 'b'));
    const dataset = await load(folder);
    assert.deepEqual(dataset.classes, ['a']);
  });

  it('refuses GIF, WebP, TIFF and SVG files named .png or .jpg, by their bytes', async () => {
    const cases: [string, Buffer, string][] = [
      [
        'x.png',
        await sharp({ create: { width: 2, height: 2, channels: 3, background: 'red' } })
          .gif()
          .toBuffer(),
        'a GIF image',
      ],
      [
        'x.jpg',
        await sharp({ create: { width: 2, height: 2, channels: 3, background: 'red' } })
          .webp()
          .toBuffer(),
        'a WebP image',
      ],
      [
        'x.png',
        await sharp({ create: { width: 2, height: 2, channels: 3, background: 'red' } })
          .tiff()
          .toBuffer(),
        'a TIFF image',
      ],
      ['x.png', Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="2" height="2"><image href="/etc/passwd"/></svg>'), 'an SVG or XML file'],
    ];
    for (const [k, [name, bytes, kind]] of cases.entries()) {
      const folder = path.join(dir, `disguised-${k}`);
      await writeImage(path.join(folder, 'a', '1.png'), 2, 2, 3, () => [1, 2, 3]);
      await writeFile(path.join(folder, 'a', name), bytes);
      await assert.rejects(load(folder), {
        name: 'InputError',
        message: `${path.join(folder, 'a', name)}: is not a PNG or JPEG image (its bytes look like ${kind}); soup reads PNG and JPEG only`,
      });
    }
  });

  it('refuses a resize that would make a thin image huge, naming the image', async () => {
    const folder = path.join(dir, 'thin');
    const file = await writeImage(path.join(folder, 'a', '1.png'), 1, 64, 1, () => [9]);
    await assert.rejects(load(folder, { resize: 4096 }), {
      message: `${file}: resize 4096 turns this 1x64 image into 4096x262144 pixels, more than the 33554432 allowed`,
    });
  });

  it('refuses a resize or crop above 4096 in dataset.json before decoding anything', async () => {
    const folder = path.join(dir, 'huge-crop');
    await writeImage(path.join(folder, 'a', '1.png'), 2, 2, 1, () => [9]);
    for (const key of ['resize', 'crop']) {
      await writeFile(path.join(folder, 'dataset.json'), JSON.stringify({ [key]: 16384 }));
      await assert.rejects(load(folder), {
        message: new RegExp(`^${folder}/dataset\\.json: ${key}: Number must be less than or equal to 4096 \\(allowed keys: `),
      });
    }
  });

  it('refuses preprocessing that makes inputs non-finite, naming the settings', async () => {
    const folder = path.join(dir, 'tiny-std');
    await writeImage(path.join(folder, 'a', '1.png'), 2, 2, 1, () => [9]);
    await writeFile(path.join(folder, 'dataset.json'), JSON.stringify({ std: [5e-324] }));
    await assert.rejects(all(await load(folder)), {
      message: `${folder}: preprocessing (std [5e-324]) turns the byte value 1 into a non-finite number; every input must be a finite number`,
    });
  });
});
