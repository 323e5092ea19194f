/**
 * ONNX Runtime on the ingredients' own graph, or on --model's export for ingredients of any format:
 * every float initializer of the model must be a tensor of the reference with the same shape.
 */
import { sha256File } from '../../checkpoint/hash.js';
import { isFloatDType } from '../../checkpoint/dtype.js';
import { OnnxCheckpoint, ONNX_SUFFIX } from '../../checkpoint/onnx/reader.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { datasetFromArrays, loadDataset, type Dataset } from '../../data/dataset.js';
import { loadNamedInputs } from '../../data/named-inputs.js';
import { pickPreprocessing } from '../../data/preprocess.js';
import { rawPixelsWarning } from '../../data/raw-pixels.js';
import { InputError } from '../../errors.js';
import type { Runtime } from '../runtime.js';
import { builtInData, datasetHash, someTensorNames } from './built-in.js';

export const onnxRuntime: Runtime = {
  name: 'onnx',
  takes: (options, reference) => options.model?.endsWith(ONNX_SUFFIX) ?? reference instanceof OnnxCheckpoint,
  runs: (checkpoint) => checkpoint instanceof OnnxCheckpoint,
  async create(options, reference, data, onProgress) {
    const path = builtInData(options, data);
    const model = options.model === undefined ? (reference as OnnxCheckpoint) : await OnnxCheckpoint.open(options.model);
    try {
      const warnings = matchInitializers(model, reference);
      const initializers = new Set(model.scan.initializers.map((initializer) => initializer.name));
      const inputs = model.scan.inputs.filter((input) => !initializers.has(input.name));
      let dataset: Dataset;
      const { OnnxEvaluator } = await import('../onnx.js');
      let evaluator;
      if (inputs.length > 1) {
        const named = await loadNamedInputs(
          path,
          inputs.map((input) => input.name),
        );
        evaluator = await OnnxEvaluator.create({ model, data: { kind: 'named', inputs: named }, outputName: options.outputName, batchSize: options.batchSize });
        // The arrays feed the model by name; the data set only carries the labels and names for reports.
        dataset = datasetFromArrays({ name: named.name, path: named.path, x: new Float32Array(0), y: named.y, sampleShape: [0] });
      } else {
        dataset = await loadDataset(path, pickPreprocessing(options), { onProgress });
        evaluator = await OnnxEvaluator.create({ model, data: { kind: 'single', dataset }, outputName: options.outputName, batchSize: options.batchSize });
      }
      const dataWarning = rawPixelsWarning(dataset);
      const backend = evaluator.description;
      // The ingredients' own graph: the candidate's key already names their weights.
      const modelKey = options.model === undefined ? 'ingredients' : await sha256File(options.model);
      const identity = async () => ({
        kind: 'onnx',
        model: modelKey,
        data: await datasetHash(dataset),
        outputName: options.outputName ?? null,
        metric: options.metric,
        backend,
      });
      return { evaluator, dataset, backend, warnings: dataWarning === undefined ? warnings : [...warnings, dataWarning], identity };
    } finally {
      if (model !== reference) await model.close();
    }
  },
};

/** Matches the model's float initializers to the reference's tensors by name; returns warnings about unused tensors. */
function matchInitializers(model: OnnxCheckpoint, reference: Checkpoint): string[] {
  if (model === reference) return [];
  const tensors = new Map(reference.tensors().map((tensor) => [tensor.name, tensor]));
  const used = new Set<string>();
  for (const initializer of model.scan.initializers) {
    if (!isFloatDType(initializer.dtype)) continue;
    const tensor = tensors.get(initializer.name);
    if (tensor === undefined) {
      if (/^onnx::/.test(initializer.name)) {
        throw new InputError(
          model.path,
          `initializer "${initializer.name}" has a name the exporter made up (constant folding), so no tensor of ${reference.path} can be matched to it`,
          {
            hint: 're-export with torch.onnx.export(..., do_constant_folding=False), or with the dynamo exporter (dynamo=True), which keeps parameter names',
          },
        );
      }
      throw new InputError(model.path, `initializer "${initializer.name}" is not a tensor of ${reference.path} (it has ${someTensorNames(reference)})`, {
        hint: 'export the model from the same code that saved the checkpoints, so the names agree',
      });
    }
    if (tensor.shape.join(',') !== initializer.dims.join(',')) {
      throw new InputError(
        model.path,
        `size mismatch for ${initializer.name}: [${initializer.dims.join(', ')}] in the model vs [${tensor.shape.join(', ')}] in ${reference.path}`,
      );
    }
    if (!isFloatDType(tensor.dtype))
      throw new InputError(model.path, `initializer "${initializer.name}" is ${initializer.dtype} in the model but ${tensor.dtype} in ${reference.path}`);
    used.add(initializer.name);
  }
  const ignored = [...tensors.keys()].filter((name) => !used.has(name));
  if (ignored.length === 0) return [];
  const list = ignored.slice(0, 8).join(', ') + (ignored.length > 8 ? `, ... (${ignored.length} in all)` : '');
  return [`${ignored.length} tensor(s) of ${reference.path} are not used by ${model.path} and are ignored when scoring: ${list}`];
}
