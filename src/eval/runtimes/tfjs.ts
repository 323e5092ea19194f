/** TensorFlow.js on a LayersModel: the ingredients' own topology (TF.js folders) or --model's model.json. */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { MODEL_JSON, readModelJson, TfjsCheckpoint } from '../../checkpoint/tfjs.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { loadDataset } from '../../data/dataset.js';
import { pickPreprocessing } from '../../data/preprocess.js';
import { rawPixelsWarning } from '../../data/raw-pixels.js';
import { InputError, UsageError } from '../../errors.js';
import type { Runtime } from '../runtime.js';
import type { TfjsEvaluatorOptions } from '../tfjs.js';
import { builtInData, datasetHash, someTensorNames } from './built-in.js';

export const tfjsRuntime: Runtime = {
  name: 'tfjs',
  // The last runtime: it takes whatever the others did not, and says what it lacks.
  takes: () => true,
  runs: (checkpoint) => checkpoint instanceof TfjsCheckpoint,
  async create(options, reference, data, onProgress) {
    const dataPath = builtInData(options, data);
    const { modelTopology, source } = await topologyFor(options.model, reference);
    const dataset = await loadDataset(dataPath, pickPreprocessing(options), { onProgress });
    const dataWarning = rawPixelsWarning(dataset);
    const { TfjsEvaluator } = await import('../tfjs.js');
    const evaluator = await TfjsEvaluator.create({ modelTopology, modelSource: source, dataset, backend: options.backend, batchSize: options.batchSize });
    const tfjs: TfjsEvaluatorOptions = { modelTopology, modelSource: source, dataset, backend: evaluator.backend, batchSize: options.batchSize };
    try {
      checkWeightsMatch(evaluator.weightSpecs(), reference, source);
    } catch (error) {
      await evaluator.dispose();
      throw error;
    }
    const identity = async () => ({
      kind: 'tfjs',
      model: createHash('sha256').update(JSON.stringify(modelTopology)).digest('hex'),
      data: await datasetHash(dataset),
      outputName: options.outputName ?? null,
      metric: options.metric,
      backend: evaluator.backend,
    });
    return { evaluator, dataset, tfjs, backend: evaluator.backend, warnings: dataWarning === undefined ? [] : [dataWarning], identity };
  },
};

async function topologyFor(model: string | undefined, reference: Checkpoint): Promise<{ modelTopology: Record<string, unknown>; source: string }> {
  if (model !== undefined) {
    const file = model.endsWith('.json') ? model : path.join(model, MODEL_JSON);
    return { modelTopology: (await readModelJson(file)).modelTopology, source: file };
  }
  if (reference instanceof TfjsCheckpoint) return { modelTopology: reference.modelJson.modelTopology, source: path.join(reference.path, MODEL_JSON) };
  throw new UsageError(`${reference.path}: a ${reference.format} checkpoint has no model architecture to run`, {
    hint: 'pass --model model.onnx (an ONNX export) or --model model.json (a TF.js model) whose weight names match the tensors, or score with --eval-cmd',
  });
}

/** Every weight of the model must be a tensor of the checkpoint with the same shape. */
function checkWeightsMatch(specs: { name: string; shape: number[] }[], reference: Checkpoint, source: string): void {
  const tensors = new Map(reference.tensors().map((tensor) => [tensor.name, tensor]));
  for (const spec of specs) {
    const tensor = tensors.get(spec.name);
    if (tensor === undefined)
      throw new InputError(source, `model weight "${spec.name}" is not a tensor of ${reference.path} (it has ${someTensorNames(reference)})`);
    if (tensor.shape.join(',') !== spec.shape.join(',')) {
      throw new InputError(
        source,
        `size mismatch for ${spec.name}: [${spec.shape.join(', ')}] in the model vs [${tensor.shape.join(', ')}] in ${reference.path}`,
      );
    }
  }
}
