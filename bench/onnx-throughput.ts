/**
 * ONNX Runtime against TF.js's wasm backend on the same model (the fixture MLP, 784-64-10, in both
 * formats) and the same data, scored the way soup scores a candidate: samples per second, side by side.
 */
import path from 'node:path';
import { OnnxCheckpoint } from '../src/checkpoint/onnx/reader.js';
import { TfjsCheckpoint } from '../src/checkpoint/tfjs.js';
import { datasetFromArrays, loadDataset, type Dataset } from '../src/data/dataset.js';
import { OnnxEvaluator } from '../src/eval/onnx.js';
import { TfjsEvaluator } from '../src/eval/tfjs.js';
import type { Evaluator } from '../src/eval/evaluator.js';
import { ingredientWeights } from '../src/weights/candidate.js';

export interface ThroughputRow {
  name: string;
  value: string;
  target?: string;
  holds?: boolean;
}

const COPIES = 10;

/** The validation set repeated, so that one evaluation runs long enough to time. */
async function repeat(dataset: Dataset, copies: number): Promise<Dataset> {
  const once = await dataset.read(0, dataset.n);
  const x = new Float32Array(once.length * copies);
  const y = new Int32Array(dataset.y.length * copies);
  for (let k = 0; k < copies; k++) {
    x.set(once, k * once.length);
    y.set(dataset.y, k * dataset.y.length);
  }
  return datasetFromArrays({ name: dataset.name, path: dataset.path, x, y, sampleShape: dataset.sampleShape });
}

async function samplesPerSecond(evaluator: Evaluator, checkpoint: OnnxCheckpoint | TfjsCheckpoint, n: number): Promise<number> {
  const start = performance.now();
  await evaluator.evaluate(ingredientWeights(checkpoint));
  return n / ((performance.now() - start) / 1000);
}

export async function benchOnnx(root: string, runs: number, rows: ThroughputRow[], results: Record<string, unknown>): Promise<void> {
  const dataset = await repeat(await loadDataset(path.join(root, 'fixtures', 'data', 'val')), COPIES);
  const onnxModel = await OnnxCheckpoint.open(path.join(root, 'fixtures', 'onnx', 'lr1e-4-s1.onnx'));
  const tfjsModel = await TfjsCheckpoint.open(path.join(root, 'fixtures', 'ingredients', 'lr1e-4-s1'));
  const ort = await OnnxEvaluator.create({ model: onnxModel, data: { kind: 'single', dataset } });
  const tfjs = await TfjsEvaluator.create({ modelTopology: tfjsModel.modelJson.modelTopology, modelSource: 'fixture', dataset, backend: 'wasm' });
  const ortRates: number[] = [];
  const tfjsRates: number[] = [];
  try {
    // One warm-up each, then alternating runs so that both see the same machine load.
    await samplesPerSecond(ort, onnxModel, dataset.n);
    await samplesPerSecond(tfjs, tfjsModel, dataset.n);
    for (let run = 0; run < runs; run++) {
      ortRates.push(await samplesPerSecond(ort, onnxModel, dataset.n));
      tfjsRates.push(await samplesPerSecond(tfjs, tfjsModel, dataset.n));
    }
  } finally {
    await Promise.all([ort.dispose(), tfjs.dispose(), onnxModel.close(), tfjsModel.close()]);
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1]!;
  const [ortRate, tfjsRate] = [median(ortRates), median(tfjsRates)];
  const ratio = ortRate / tfjsRate;
  rows.push({ name: `scoring the fixture MLP, ${dataset.n} samples`, value: '' });
  rows.push({ name: `  ${ort.description}`, value: `${ortRate.toFixed(0)} samples/s` });
  rows.push({ name: '  tfjs (wasm)', value: `${tfjsRate.toFixed(0)} samples/s` });
  rows.push({ name: '  onnxruntime / tfjs (wasm)', value: `${ratio.toFixed(1)}x`, target: '>= 5x', holds: ratio >= 5 });
  results.onnx = { samples: dataset.n, onnxruntime: ortRates, tfjsWasm: tfjsRates, backend: ort.description, ratio };
}
