/**
 * Makes the image-pipeline fixtures from Fashion-MNIST (run after make-fixtures, which clears fixtures/):
 *
 *   fixtures/data/images/<class>/   30 test images (3 per class) as they come in real folders: mixed
 *                                   sizes, RGB and RGBA PNGs, grey PNGs, JPEGs, one with EXIF rotation;
 *                                   tinted, so that colour channels differ; dataset.json resizes the
 *                                   shorter side to 28 and center-crops 28 (the black borders added
 *                                   before upscaling are exactly what the crop removes)
 *   fixtures/conv/nhwc/             a tiny convolutional TF.js model, input [N, 28, 28, 3] (NHWC):
 *                                   1x1 conv mixing RGB, 2x2 average pooling, softmax over 10 classes
 *   fixtures/conv/nchw.onnx         the same weights as a PyTorch export, input [N, 3, 28, 28] (NCHW),
 *                                   made by make-conv-onnx.py with /usr/bin/python3 (torch, onnx)
 *   fixtures/conv/expected.json     the TF.js model's predictions on the image folder, for both twins' tests
 *
 * Deterministic: seeded tints and training order, TF.js's cpu backend.
 */
import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import type * as Core from '@tensorflow/tfjs-core';
import type * as Layers from '@tensorflow/tfjs-layers';
import { importTf } from './tfjs-umbrella.js';
import sharp from 'sharp';
import { loadDataset } from '../src/data/dataset.js';
import { parseIdx } from '../src/data/idx.js';
import { seededRandom as rng } from '../src/random.js';

/** Training needs the umbrella package (every op's gradient); npm run fixtures installs it. */
const tf = await importTf();

const SOURCE = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
const OUT = path.resolve(process.argv[2] ?? 'fixtures');
const SIDE = 28;
const PIXELS = SIDE * SIDE;
const CLASS_NAMES = ['0-tshirt', '1-trouser', '2-pullover', '3-dress', '4-coat', '5-sandal', '6-shirt', '7-sneaker', '8-bag', '9-boot'];

async function readSplit(prefix: string): Promise<{ x: Uint8Array; y: Uint8Array; n: number }> {
  const read = async (name: string) => parseIdx(gunzipSync(await readFile(path.join(SOURCE, name))), name).values as Uint8Array;
  const [x, y] = await Promise.all([read(`${prefix}-images-idx3-ubyte.gz`), read(`${prefix}-labels-idx1-ubyte.gz`)]);
  return { x, y, n: y.length };
}

/** An RGB image of a grey one, every channel scaled by its own factor (clipped to 255). */
function tint(grey: Uint8Array, factors: number[]): Uint8Array {
  const out = new Uint8Array(grey.length * 3);
  for (let p = 0; p < grey.length; p++) for (let c = 0; c < 3; c++) out[p * 3 + c] = Math.min(255, Math.round(grey[p]! * factors[c]!));
  return out;
}

const randomTint = (random: () => number) => [0.5 + random(), 0.5 + random(), 0.5 + random()];

function buildModel(): Layers.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({
        name: 'mix',
        inputShape: [SIDE, SIDE, 3],
        filters: 2,
        kernelSize: 1,
        activation: 'relu',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 11 }),
      }),
      tf.layers.averagePooling2d({ name: 'pool', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'logits', units: 10, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 12 }) }),
    ],
  });
}

async function train(model: Layers.LayersModel, data: { x: Uint8Array; y: Uint8Array; n: number }): Promise<void> {
  model.compile({ optimizer: tf.train.adam(3e-3), loss: 'categoricalCrossentropy' });
  const random = rng(5);
  const batch = 64;
  for (let epoch = 0; epoch < 3; epoch++) {
    for (let start = 0; start + batch <= data.n; start += batch) {
      const xs = new Float32Array(batch * PIXELS * 3);
      const ys = new Float32Array(batch * 10);
      for (let b = 0; b < batch; b++) {
        const k = start + b;
        const rgb = tint(data.x.subarray(k * PIXELS, (k + 1) * PIXELS), randomTint(random));
        for (let i = 0; i < rgb.length; i++) xs[b * rgb.length + i] = rgb[i]! / 255;
        ys[b * 10 + data.y[k]!] = 1;
      }
      const [x, y] = [tf.tensor4d(xs, [batch, SIDE, SIDE, 3]), tf.tensor2d(ys, [batch, 10])];
      await model.trainOnBatch(x, y);
      tf.dispose([x, y]);
    }
  }
}

async function saveModel(model: Layers.LayersModel, folder: string): Promise<void> {
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      await mkdir(folder, { recursive: true });
      const shard = 'group1-shard1of1.bin';
      await writeFile(path.join(folder, shard), new Uint8Array(artifacts.weightData as ArrayBuffer));
      const modelJson = {
        format: artifacts.format,
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy,
        modelTopology: artifacts.modelTopology,
        weightsManifest: [{ paths: [shard], weights: artifacts.weightSpecs }],
      };
      await writeFile(path.join(folder, 'model.json'), `${JSON.stringify(modelJson)}\n`);
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
}

/** Black borders around an image: the center crop after resizing removes exactly these. */
function pad(rgb: Uint8Array, channels: number, horizontal: number, vertical: number): { data: Uint8Array; width: number; height: number } {
  const width = SIDE + 2 * horizontal;
  const height = SIDE + 2 * vertical;
  const data = new Uint8Array(width * height * channels);
  for (let y = 0; y < SIDE; y++) data.set(rgb.subarray(y * SIDE * channels, (y + 1) * SIDE * channels), ((y + vertical) * width + horizontal) * channels);
  return { data, width, height };
}

/** One image file in one of five styles, so the folder holds what real folders hold. */
async function writeImage(file: string, grey: Uint8Array, style: number, random: () => number): Promise<string> {
  const rgb = tint(grey, randomTint(random));
  const raw = (image: { data: Uint8Array; width: number; height: number }, channels: 1 | 3 | 4) =>
    sharp(image.data, { raw: { width: image.width, height: image.height, channels } });
  switch (style) {
    case 0: {
      const image = pad(rgb, 3, 3, 0);
      await writeFile(
        `${file}.jpg`,
        await raw(image, 3)
          .resize(image.width * 2, image.height * 2, { kernel: 'linear' })
          .jpeg({ quality: 92 })
          .toBuffer(),
      );
      return `${file}.jpg`;
    }
    case 1:
      await writeFile(
        `${file}.png`,
        await raw({ data: grey, width: SIDE, height: SIDE }, 1)
          .resize(SIDE * 3, SIDE * 3, { kernel: 'linear' })
          .png()
          .toBuffer(),
      );
      return `${file}.png`;
    case 2: {
      const rgba = new Uint8Array(PIXELS * 4);
      for (let p = 0; p < PIXELS; p++) rgba.set([rgb[p * 3]!, rgb[p * 3 + 1]!, rgb[p * 3 + 2]!, 64 + Math.floor(random() * 192)], p * 4);
      await writeFile(`${file}.png`, await raw({ data: rgba, width: SIDE, height: SIDE }, 4).png().toBuffer());
      return `${file}.png`;
    }
    case 3: {
      // Stored turned a quarter left; EXIF orientation 6 turns it back upright.
      const upright = await raw({ data: rgb, width: SIDE, height: SIDE }, 3)
        .resize(SIDE * 2, SIDE * 2, { kernel: 'linear' })
        .raw()
        .toBuffer();
      const stored = await sharp(upright, { raw: { width: SIDE * 2, height: SIDE * 2, channels: 3 } })
        .rotate(-90)
        .jpeg({ quality: 92 })
        .withMetadata({ orientation: 6 })
        .toBuffer();
      await writeFile(`${file}.jpg`, stored);
      return `${file}.jpg`;
    }
    default: {
      const image = pad(rgb, 3, 0, 4);
      await writeFile(`${file}.png`, await raw(image, 3).png().toBuffer());
      return `${file}.png`;
    }
  }
}

async function main(): Promise<void> {
  tf.env().set('PROD', true);
  // The cpu backend: wasm has no gradient for convolutions.
  if (!(await tf.setBackend('cpu'))) throw new Error('the TF.js cpu backend did not start');
  const [trainSet, testSet] = await Promise.all([readSplit('train'), readSplit('t10k')]);

  const imagesDir = path.join(OUT, 'data', 'images');
  await rm(imagesDir, { recursive: true, force: true });
  const random = rng(7);
  for (const [label, name] of CLASS_NAMES.entries()) {
    await mkdir(path.join(imagesDir, name), { recursive: true });
    let taken = 0;
    for (let k = 0; k < testSet.n && taken < 3; k++) {
      if (testSet.y[k] !== label) continue;
      await writeImage(path.join(imagesDir, name, `test-${k}`), testSet.x.subarray(k * PIXELS, (k + 1) * PIXELS), (label * 3 + taken) % 5, random);
      taken++;
    }
  }
  const dataset = {
    resize: SIDE,
    crop: SIDE,
    scale: 1 / 255,
    description: 'Fashion-MNIST test images, tinted, in mixed sizes and formats (see scripts/make-image-fixtures.ts)',
  };
  await writeFile(path.join(imagesDir, 'dataset.json'), `${JSON.stringify(dataset, null, 2)}\n`);

  const model = buildModel();
  await train(model, { x: trainSet.x.subarray(0, 12_000 * PIXELS), y: trainSet.y.subarray(0, 12_000), n: 12_000 });
  const convDir = path.join(OUT, 'conv');
  await rm(convDir, { recursive: true, force: true });
  await saveModel(model, path.join(convDir, 'nhwc'));

  // Predictions on the folder, through the same pipeline soup uses.
  const images = await loadDataset(imagesDir, {}, { cacheDir: await mkdtemp(path.join(tmpdir(), 'soup-fixtures-')) });
  const nhwc = await images.read(0, images.n, images.fitTo([SIDE, SIDE, 3]));
  const probabilities = tf.tidy(() => (model.predict(tf.tensor4d(nhwc, [images.n, SIDE, SIDE, 3])) as Core.Tensor).arraySync() as number[][]);
  const predictions = probabilities.map((row) => row.indexOf(Math.max(...row)));
  const accuracy = predictions.filter((p, i) => p === images.y[i]).length / images.n;
  await writeFile(path.join(convDir, 'expected.json'), `${JSON.stringify({ accuracy, predictions }, null, 2)}\n`);
  console.log(`conv model: accuracy ${accuracy.toFixed(4)} on ${images.n} fixture images`);

  // The NCHW twin: the same weights exported from PyTorch, checked against TF.js's outputs on the same images.
  const weights = Object.fromEntries(model.weights.map((w) => [w.originalName, { shape: w.shape, values: Array.from(w.read().dataSync()) }]));
  const work = path.join(convDir, 'twin-input.json');
  await writeFile(work, JSON.stringify({ weights, nhwc: Array.from(nhwc), n: images.n, probabilities }));
  try {
    execFileSync('/usr/bin/python3', [new URL('../../scripts/make-conv-onnx.py', import.meta.url).pathname, work, path.join(convDir, 'nchw.onnx')], {
      stdio: 'inherit',
    });
  } finally {
    await rm(work, { force: true });
  }
  model.dispose();
}

await main();
