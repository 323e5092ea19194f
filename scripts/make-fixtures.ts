/**
 * Regenerates fixtures/ from Fashion-MNIST: a small sweep of real TF.js models and the data to
 * score them on. Deterministic: every random choice (initialisation, shuffling, augmentation,
 * splits) comes from fixed seeds, and training runs on TF.js's wasm backend.
 *
 *   apt-get install dataset-fashion-mnist   # Debian's package: /usr/share/datasets/fashion-mnist
 *   npm run fixtures                        # or FASHION_MNIST_DIR=/elsewhere npm run fixtures
 *
 * Training needs the @tensorflow/tfjs umbrella package (see tfjs-umbrella.ts), which `npm run
 * fixtures` installs without saving it.
 *
 * What it makes:
 *   fixtures/ingredients/<run>/      8 fine-tuned TF.js LayersModels (model.json + shard), one sweep
 *   fixtures/data/val/               2,000 held-out training images, IDX (MNIST layout, gzipped)
 *   fixtures/data/test.npz           2,000 test images (x uint8 [n,28,28], y int64)
 *   fixtures/data/test-shifted.npz   the same images translated and noisy: a distribution shift
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import type * as Core from '@tensorflow/tfjs-core';
import type * as Layers from '@tensorflow/tfjs-layers';
import { importTf, type Tf } from './tfjs-umbrella.js';
import { zipSync } from 'fflate';
import { encodeIdxU8, parseIdx } from '../src/data/idx.js';
import { encodeNpy } from '../src/data/npy.js';
import { seededRandom as rng, shuffledIndices as permutation } from '../src/random.js';

const SOURCE = process.env.FASHION_MNIST_DIR ?? '/usr/share/datasets/fashion-mnist';
const OUT = path.resolve(process.argv[2] ?? 'fixtures');
const PIXELS = 784;
const CLASSES = 10;
const SCALE = 1 / 255;

interface Split {
  x: Uint8Array;
  y: Uint8Array;
  n: number;
}

async function readSplit(images: string, labels: string): Promise<Split> {
  const read = async (name: string) => {
    const file = path.join(SOURCE, name);
    const bytes = await readFile(file).catch(() => {
      throw new Error(`${file} not found: install Debian's dataset-fashion-mnist package (apt-get install dataset-fashion-mnist) or set FASHION_MNIST_DIR`);
    });
    return parseIdx(gunzipSync(bytes), file).values as Uint8Array;
  };
  const [x, y] = await Promise.all([read(images), read(labels)]);
  return { x, y, n: y.length };
}

function take(split: Split, indices: ArrayLike<number>): Split {
  const x = new Uint8Array(indices.length * PIXELS);
  const y = new Uint8Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const k = indices[i]!;
    x.set(split.x.subarray(k * PIXELS, (k + 1) * PIXELS), i * PIXELS);
    y[i] = split.y[k]!;
  }
  return { x, y, n: indices.length };
}

/** Moves an image by (dx, dy) pixels, filling with black, as a camera that is slightly off would. */
function translate(image: Uint8Array, dx: number, dy: number): Uint8Array {
  const out = new Uint8Array(PIXELS);
  for (let r = 0; r < 28; r++) {
    for (let c = 0; c < 28; c++) {
      const sr = r - dy;
      const sc = c - dx;
      if (sr >= 0 && sr < 28 && sc >= 0 && sc < 28) out[r * 28 + c] = image[sr * 28 + sc]!;
    }
  }
  return out;
}

/** The shifted test set: every image moved by up to 3 pixels and given Gaussian noise. */
function shift(split: Split, random: () => number): Split {
  const x = new Uint8Array(split.x.length);
  for (let i = 0; i < split.n; i++) {
    const dx = Math.floor(random() * 7) - 3;
    const dy = Math.floor(random() * 7) - 3;
    const moved = translate(split.x.subarray(i * PIXELS, (i + 1) * PIXELS), dx, dy);
    for (let p = 0; p < PIXELS; p++) {
      const gaussian = Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
      x[i * PIXELS + p] = Math.max(0, Math.min(255, Math.round(moved[p]! + 40 * gaussian)));
    }
  }
  return { x, y: split.y, n: split.n };
}

function buildModel(seed: number): tf.LayersModel {
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'dense_1', inputShape: [PIXELS], units: 64, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ name: 'dense_2', units: CLASSES, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

interface Recipe {
  name: string;
  learningRate: number;
  epochs: number;
  seed: number;
  augment: boolean;
  labelSmoothing: number;
}

/** Trains with our own seeded shuffling and augmentation (model.fit would shuffle with Math.random). */
async function train(model: tf.LayersModel, data: Split, recipe: Recipe): Promise<void> {
  model.compile({ optimizer: tf.train.adam(recipe.learningRate), loss: 'categoricalCrossentropy' });
  const random = rng(recipe.seed * 7919);
  const batch = 64;
  const xs = new Float32Array(batch * PIXELS);
  const ys = new Float32Array(batch * CLASSES);
  for (let epoch = 0; epoch < recipe.epochs; epoch++) {
    const order = permutation(data.n, random);
    for (let start = 0; start + batch <= data.n; start += batch) {
      ys.fill(recipe.labelSmoothing / CLASSES);
      for (let b = 0; b < batch; b++) {
        const k = order[start + b]!;
        let image = data.x.subarray(k * PIXELS, (k + 1) * PIXELS);
        if (recipe.augment) image = translate(image, Math.floor(random() * 5) - 2, Math.floor(random() * 5) - 2);
        for (let p = 0; p < PIXELS; p++) xs[b * PIXELS + p] = image[p]! * SCALE;
        ys[b * CLASSES + data.y[k]!]! += 1 - recipe.labelSmoothing;
      }
      const [x, y] = [tf.tensor2d(xs, [batch, PIXELS]), tf.tensor2d(ys, [batch, CLASSES])];
      await model.trainOnBatch(x, y);
      tf.dispose([x, y]);
    }
  }
}

function accuracy(model: tf.LayersModel, data: Split): number {
  return tf.tidy(() => {
    const x = tf.tensor2d(
      Float32Array.from(data.x, (v) => v * SCALE),
      [data.n, PIXELS],
    );
    const predicted = tf.argMax(model.predict(x) as tf.Tensor, -1).dataSync();
    let correct = 0;
    for (let i = 0; i < data.n; i++) if (predicted[i] === data.y[i]) correct++;
    return correct / data.n;
  });
}

/** Writes a LayersModel as TF.js's converter lays it out: model.json and one weight shard. */
async function saveModel(model: tf.LayersModel, folder: string, metadata: Record<string, unknown>): Promise<void> {
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
        userDefinedMetadata: metadata,
      };
      await writeFile(path.join(folder, 'model.json'), `${JSON.stringify(modelJson)}\n`);
      return { modelArtifactsInfo: { dateSaved: new Date(0), modelTopologyType: 'JSON' } };
    }),
  );
}

function npz(split: Split): Uint8Array {
  const labels = BigInt64Array.from(split.y, (label) => BigInt(label));
  // A fixed mtime keeps the archive byte-identical from run to run.
  const mtime = new Date('2020-01-01T00:00:00Z');
  return zipSync({ 'x.npy': [encodeNpy(split.x, [split.n, 28, 28]), { mtime }], 'y.npy': [encodeNpy(labels, [split.n]), { mtime }] }, { level: 9 });
}

declare namespace tf {
  type LayersModel = Layers.LayersModel;
  type Tensor = Core.Tensor;
}
let tf: Tf;

async function main(): Promise<void> {
  tf = await importTf();
  await import('@tensorflow/tfjs-backend-wasm');
  tf.env().set('PROD', true);
  if (!(await tf.setBackend('wasm'))) throw new Error('the TF.js wasm backend did not start');

  const trainSet = await readSplit('train-images-idx3-ubyte.gz', 'train-labels-idx1-ubyte.gz');
  const testSet = await readSplit('t10k-images-idx3-ubyte.gz', 't10k-labels-idx1-ubyte.gz');
  const order = permutation(trainSet.n, rng(1));
  const pretrainData = take(trainSet, order.subarray(0, 10_000));
  const finetuneData = take(trainSet, order.subarray(10_000, 20_000));
  const val = take(trainSet, order.subarray(trainSet.n - 2_000));
  const test = take(testSet, permutation(testSet.n, rng(2)).subarray(0, 2_000));
  const shifted = shift(test, rng(3));

  await rm(OUT, { recursive: true, force: true });
  const valDir = path.join(OUT, 'data', 'val');
  await mkdir(valDir, { recursive: true });
  await writeFile(path.join(valDir, 'val-images-idx3-ubyte.gz'), gzipSync(encodeIdxU8(val.x, [val.n, 28, 28]), { level: 9 }));
  await writeFile(path.join(valDir, 'val-labels-idx1-ubyte.gz'), gzipSync(encodeIdxU8(val.y, [val.n]), { level: 9 }));
  const preprocessing = (description: string) => `${JSON.stringify({ scale: SCALE, description }, null, 2)}\n`;
  await writeFile(path.join(valDir, 'dataset.json'), preprocessing('Fashion-MNIST: 2,000 training images held out from every fine-tuning run'));
  await writeFile(path.join(OUT, 'data', 'test.npz'), npz(test));
  await writeFile(path.join(OUT, 'data', 'test-shifted.npz'), npz(shifted));
  await writeFile(
    path.join(OUT, 'data', 'dataset.json'),
    preprocessing('Fashion-MNIST test images; test-shifted is translated by up to 3 px with Gaussian noise (sigma 40)'),
  );

  const pretrained = buildModel(42);
  await train(pretrained, pretrainData, { name: 'pretrain', learningRate: 1e-3, epochs: 3, seed: 42, augment: false, labelSmoothing: 0 });
  console.log(`pretrained: val accuracy ${accuracy(pretrained, val).toFixed(4)}`);
  const start = pretrained.getWeights();

  // A sweep as people run one: learning rates, seeds, epochs, augmentation, label smoothing, and one
  // learning rate that is too aggressive.
  const sweep: Recipe[] = [
    { name: 'lr1e-4-s1', learningRate: 1e-4, epochs: 2, seed: 1, augment: false, labelSmoothing: 0 },
    { name: 'lr3e-4-s2', learningRate: 3e-4, epochs: 2, seed: 2, augment: false, labelSmoothing: 0 },
    { name: 'lr3e-4-aug-s3', learningRate: 3e-4, epochs: 2, seed: 3, augment: true, labelSmoothing: 0 },
    { name: 'lr1e-3-s4', learningRate: 1e-3, epochs: 1, seed: 4, augment: false, labelSmoothing: 0 },
    { name: 'lr1e-3-ls-s5', learningRate: 1e-3, epochs: 2, seed: 5, augment: false, labelSmoothing: 0.1 },
    { name: 'lr3e-4-e4-s6', learningRate: 3e-4, epochs: 4, seed: 6, augment: false, labelSmoothing: 0 },
    { name: 'lr1e-4-ls-aug-s7', learningRate: 1e-4, epochs: 3, seed: 7, augment: true, labelSmoothing: 0.1 },
    { name: 'lr3e-2-s8', learningRate: 3e-2, epochs: 2, seed: 8, augment: false, labelSmoothing: 0 },
  ];
  for (const recipe of sweep) {
    const model = buildModel(42);
    model.setWeights(start);
    await train(model, finetuneData, recipe);
    const { name, ...hyperparameters } = recipe;
    await saveModel(model, path.join(OUT, 'ingredients', name), { hyperparameters });
    console.log(`${name}: val accuracy ${accuracy(model, val).toFixed(4)}`);
    model.dispose();
  }
}

await main();
