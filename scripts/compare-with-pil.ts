/**
 * How close soup's image pipeline (libvips through sharp) comes to torchvision's PIL pipeline, the
 * one the paper's models were evaluated with: Resize(28) + CenterCrop(28) on PIL images is exactly
 * PIL's Image.resize and Image.crop, which compare-with-pil.py runs with /usr/bin/python3 (Pillow).
 *
 *   npm run build && node dist/scripts/compare-with-pil.js [count]
 *
 * Makes `count` Fashion-MNIST test images (tinted, padded to random aspect ratios, upscaled to random
 * sizes from 40 to 160 pixels) as PNG and as JPEG, preprocesses them both ways with bilinear and
 * bicubic resizing, and reports the pixel differences and the accuracy of the fixture conv model on each.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type * as Core from '@tensorflow/tfjs-core';
import { importTf } from './tfjs-umbrella.js';
import sharp from 'sharp';
import { loadDataset } from '../src/data/dataset.js';
import { parseIdx } from '../src/data/idx.js';
import { encodeNpy, parseNpy } from '../src/data/npy.js';
import { seededRandom as rng } from '../src/random.js';

/** Training needs the umbrella package (every op's gradient); npm run fixtures installs it. */
const tf = await importTf();

const SOURCE = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
const COUNT = Number(process.argv[2] ?? 1000);
const SIDE = 28;

async function main(): Promise<void> {
  tf.env().set('PROD', true);
  await tf.setBackend('cpu');
  const read = async (name: string) => parseIdx(gunzipSync(await readFile(path.join(SOURCE, name))), name).values as Uint8Array;
  const [x, y] = await Promise.all([read('t10k-images-idx3-ubyte.gz'), read('t10k-labels-idx1-ubyte.gz')]);
  const work = await mkdtemp(path.join(tmpdir(), 'soup-pil-'));
  const random = rng(3);
  try {
    const files: Record<'png' | 'jpeg', string[]> = { png: [], jpeg: [] };
    for (let k = 0; k < COUNT; k++) {
      const tint = [0.5 + random(), 0.5 + random(), 0.5 + random()];
      const padX = Math.floor(random() * 8);
      const padY = Math.floor(random() * 8);
      const width = SIDE + 2 * padX;
      const height = SIDE + 2 * padY;
      const rgb = Buffer.alloc(width * height * 3);
      for (let row = 0; row < SIDE; row++) {
        for (let col = 0; col < SIDE; col++) {
          const v = x[k * SIDE * SIDE + row * SIDE + col]!;
          for (let c = 0; c < 3; c++) rgb[((row + padY) * width + col + padX) * 3 + c] = Math.min(255, Math.round(v * tint[c]!));
        }
      }
      const scale = (40 + random() * 120) / Math.min(width, height);
      const image = sharp(rgb, { raw: { width, height, channels: 3 } }).resize(Math.round(width * scale), Math.round(height * scale), { kernel: 'lanczos3' });
      for (const format of ['png', 'jpeg'] as const) {
        const file = path.join(work, format, String(y[k]), `${k}.${format === 'png' ? 'png' : 'jpg'}`);
        await mkdir(path.dirname(file), { recursive: true });
        await writeFile(file, format === 'png' ? await image.clone().png().toBuffer() : await image.clone().jpeg({ quality: 90 }).toBuffer());
        files[format].push(file);
      }
    }
    const model = await tf.loadLayersModel(tf.io.fromMemory(await readModel()));
    const accuracyOf = (pixels: Float32Array, labels: Int32Array) =>
      tf.tidy(() => {
        const predicted = tf.argMax(model.predict(tf.div(tf.tensor4d(pixels, [labels.length, SIDE, SIDE, 3]), 255)) as Core.Tensor, -1).dataSync();
        return Array.from(predicted, Number).reduce((sum, p, i) => sum + (p === labels[i] ? 1 : 0), 0) / labels.length;
      });
    console.log(`${COUNT} images; accuracy is the fixture conv model's on each pipeline's pixels`);
    for (const format of ['png', 'jpeg'] as const) {
      for (const interpolation of ['bilinear', 'bicubic'] as const) {
        const dataset = await loadDataset(path.join(work, format), { resize: SIDE, crop: SIDE, interpolation }, { cacheDir: path.join(work, 'cache') });
        const ours = await dataset.read(0, dataset.n);
        const oursFile = path.join(work, 'ours.npy');
        const pilFile = path.join(work, 'pil.npy');
        await writeFile(oursFile, encodeNpy(Uint8Array.from(ours), [dataset.n, SIDE, SIDE, 3]));
        // The folder lists classes and files in name order: hand Python the same order.
        const order = [...files[format]].sort((a, b) => {
          const [keyA, keyB] = [
            [path.dirname(a), path.basename(a)],
            [path.dirname(b), path.basename(b)],
          ];
          const [first, second] = keyA[0] === keyB[0] ? [keyA[1]!, keyB[1]!] : [keyA[0]!, keyB[0]!];
          return first < second ? -1 : first > second ? 1 : 0;
        });
        await writeFile(path.join(work, 'files.txt'), order.join('\n'));
        const report = execFileSync('/usr/bin/python3', [
          new URL('../../scripts/compare-with-pil.py', import.meta.url).pathname,
          path.join(work, 'files.txt'),
          oursFile,
          pilFile,
          interpolation,
          String(SIDE),
        ])
          .toString()
          .trim();
        const pil = parseNpy(await readFile(pilFile), pilFile).values;
        const pilPixels = Float32Array.from(pil);
        console.log(
          `${format} ${interpolation}: ${report}; accuracy soup ${accuracyOf(ours, dataset.y).toFixed(4)}, PIL ${accuracyOf(pilPixels, dataset.y).toFixed(4)}`,
        );
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readModel(): Promise<Core.io.ModelArtifacts> {
  const folder = new URL('../../fixtures/conv/nhwc/', import.meta.url).pathname;
  const json = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8'));
  const weights = await readFile(path.join(folder, json.weightsManifest[0].paths[0]));
  return {
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest[0].weights,
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.byteLength),
  };
}

await main();
