/**
 * Writes fixtures/onnx/ (the shipped TF.js ingredients as ONNX models, same weights and names) and
 * fixtures/onnx-multi/ (a tiny model with an int64 and a float input, and data for it):
 *
 *   npm run build && node dist/scripts/make-onnx-fixtures.js
 */
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { zipSync } from 'fflate';
import { encodeModel } from '../src/checkpoint/onnx/build.js';
import { TfjsCheckpoint } from '../src/checkpoint/tfjs.js';
import { encodeNpy } from '../src/data/npy.js';
import { MULTI_CLASSES, MULTI_FEATURES, MULTI_TOKENS, MULTI_VOCABULARY, mlpModelSpec, multiInputLogits, multiInputSpec } from './onnx-fixtures.js';

const ROOT = path.resolve(process.argv[2] ?? 'fixtures');
const SAMPLES = 64;

async function writeMlps(): Promise<void> {
  const source = path.join(ROOT, 'ingredients');
  const out = path.join(ROOT, 'onnx');
  await mkdir(out, { recursive: true });
  for (const name of (await readdir(source)).sort()) {
    const checkpoint = await TfjsCheckpoint.open(path.join(source, name));
    try {
      await writeFile(path.join(out, `${name}.onnx`), encodeModel(await mlpModelSpec(checkpoint)));
    } finally {
      await checkpoint.close();
    }
  }
}

async function writeMultiInput(): Promise<void> {
  const out = path.join(ROOT, 'onnx-multi');
  await mkdir(out, { recursive: true });
  await writeFile(path.join(out, 'tiny.onnx'), encodeModel(multiInputSpec()));
  const ids = BigInt64Array.from({ length: SAMPLES * MULTI_TOKENS }, (_, i) => BigInt((i * 7 + Math.floor(i / 3)) % MULTI_VOCABULARY));
  const features = Float32Array.from({ length: SAMPLES * MULTI_FEATURES }, (_, i) => Math.sin(i * 0.37) * 2);
  const logits = multiInputLogits(Array.from(ids, Number), features, SAMPLES);
  const y = BigInt64Array.from({ length: SAMPLES }, (_, s) => {
    const row = logits.subarray(s * MULTI_CLASSES, (s + 1) * MULTI_CLASSES);
    return BigInt(row.indexOf(Math.max(...row)));
  });
  const npz = zipSync({
    'input_ids.npy': encodeNpy(ids, [SAMPLES, MULTI_TOKENS]),
    'features.npy': encodeNpy(features, [SAMPLES, MULTI_FEATURES]),
    'y.npy': encodeNpy(y, [SAMPLES]),
  });
  await writeFile(path.join(out, 'data.npz'), npz);
}

await writeMlps();
await writeMultiInput();
