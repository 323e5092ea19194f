import { tmpdir } from 'node:os';
import { createHash } from 'node:crypto';
import { sha256File } from '../checkpoint/hash.js';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readModelJson, TfjsCheckpoint, MODEL_JSON } from '../checkpoint/tfjs.js';
import { OnnxCheckpoint, ONNX_SUFFIX } from '../checkpoint/onnx/reader.js';
import { isFloatDType } from '../checkpoint/dtype.js';
import { loadNamedInputs } from '../data/named-inputs.js';
import { rawPixelsWarning } from '../data/raw-pixels.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { datasetFromArrays, loadDataset, type Dataset } from '../data/dataset.js';
import { InputError, UsageError } from '../errors.js';
import { BACKENDS } from '../eval/backend.js';
import { CANDIDATE_PATTERN, describeRemoved, removeDeadLeftovers } from '../checkpoint/leftovers.js';
import type { CommandEvaluator } from '../eval/command.js';
import { NamingCommandEvaluator } from '../eval/command-naming.js';
import { EXECUTORS } from '../eval/executor.js';
import type { SlurmExecutor } from '../eval/slurm.js';
import { slurmExecutor } from './slurm.js';
import type { Evaluator } from '../eval/evaluator.js';
import type { TfjsEvaluatorOptions } from '../eval/tfjs.js';
import { METRIC_NAMES, metricDirection, type Direction } from '../eval/metrics.js';
import type { ProgressListener } from '../progress.js';
import { preprocessingFlags, preprocessingOptions } from './preprocessing.js';

/** Options of every command that scores checkpoints (greedy, eval). */
export const evaluationOptions = z
  .object({
    val: z.string().min(1).optional(),
    evalCmd: z.string().min(1).optional(),
    evalTimeout: z.coerce.number().positive().optional(),
    model: z.string().min(1).optional(),
    outputName: z.string().min(1).optional(),
    metric: z.string().min(1).default('accuracy'),
    backend: z.enum(BACKENDS).optional(),
    batchSize: z.coerce.number().int().positive().default(512),
    jobs: z.coerce.number().int().positive().optional(),
    workDir: z.string().min(1).optional(),
    maximize: z.boolean().optional(),
    minimize: z.boolean().optional(),
    executor: z.enum(EXECUTORS).default('local'),
    slurmArgs: z.string().optional(),
    retries: z.coerce.number().int().nonnegative().default(2),
    retryOn: z.string().min(1).optional(),
    /** Read here too: Slurm keeps its journal of submitted jobs beside it. */
    scoreCache: z.string().min(1).optional(),
  })
  .merge(preprocessingOptions);
export type EvaluationOptions = z.output<typeof evaluationOptions>;

export interface EvaluationSetup {
  evaluator: Evaluator;
  dataset?: Dataset;
  /** How to build the same TF.js evaluator in a worker thread (absent for --eval-cmd). */
  tfjs?: TfjsEvaluatorOptions;
  /** The TF.js backend in use, "onnxruntime (cpu, N threads)", or "command" for --eval-cmd. */
  backend: string;
  /** Things the user should know, such as checkpoint tensors the model does not use. */
  warnings?: string[];
  /** Which way --metric points (--maximize, --minimize, or its name). */
  direction: Direction;
  /** The Slurm executor behind --eval-cmd (--executor slurm), whose jobs --json reports. */
  slurm?: SlurmExecutor;
}

/**
 * Builds the evaluator the options ask for: TF.js on --val data (with the ingredients' own
 * topology or --model's), or the user's --eval-cmd. Everything is checked before any scoring.
 */
export async function createEvaluator(
  options: EvaluationOptions,
  reference: Checkpoint,
  data: string | undefined = options.val,
  onProgress?: ProgressListener,
): Promise<EvaluationSetup> {
  // An unknown built-in metric is named as such (by createScorer) before its direction is asked for.
  const builtIn = (METRIC_NAMES as readonly string[]).includes(options.metric);
  const direction = options.evalCmd !== undefined || builtIn ? metricDirection(options.metric, options) : undefined;
  const setup = await createScorer(options, reference, data, onProgress);
  return { ...setup, direction: direction ?? metricDirection(options.metric, options) };
}

async function createScorer(
  options: EvaluationOptions,
  reference: Checkpoint,
  data: string | undefined,
  onProgress?: ProgressListener,
): Promise<Omit<EvaluationSetup, 'direction'>> {
  if (options.evalCmd !== undefined) {
    if (!options.evalCmd.includes('{ckpt}') && !options.evalCmd.includes('{ckpt_file}')) {
      throw new UsageError("--eval-cmd must contain {ckpt}, where the candidate checkpoint's path goes (or {ckpt_file}, its weights file)", {
        hint: `e.g. --eval-cmd "python eval.py --weights {ckpt}"`,
      });
    }
    if (data !== undefined && !options.evalCmd.includes('{data}')) {
      throw new UsageError(`--eval-cmd has no {data}, so it cannot be pointed at ${data}`, {
        // Only compare takes --test: greedy's hint must not send the user looking for it.
        hint: `put {data} where the data set path goes, or leave out --val${'test' in options ? ' and --test' : ''}`,
      });
    }
    if (options.workDir !== undefined) await checkWorkDir(options.workDir);
    const slurm = options.executor === 'slurm' ? slurmExecutor(options, onProgress) : undefined;
    const evaluator = new NamingCommandEvaluator({
      command: options.evalCmd,
      metric: options.metric,
      reference,
      timeoutSeconds: options.evalTimeout,
      data,
      workDir: slurm?.workDir ?? options.workDir,
      executor: slurm?.executor,
    });
    // Candidates of runs that were killed (their process is gone) are removed, and the user told.
    const removed = await removeDeadLeftovers(slurm?.workDir ?? options.workDir ?? tmpdir(), CANDIDATE_PATTERN);
    const warnings = [...describeRemoved(removed), ...(slurm?.warnings ?? [])];
    return { evaluator, backend: 'command', warnings, ...(slurm === undefined ? {} : { slurm: slurm.executor }) };
  }
  if (options.executor === 'slurm') {
    throw new UsageError('--executor slurm runs --eval-cmd evaluations as Slurm jobs; TF.js and ONNX scoring (--val without --eval-cmd) runs in soup itself', {
      hint: 'score with --eval-cmd "python eval.py {ckpt}", or run soup itself in a job (sbatch --wrap "soup ...")',
    });
  }
  if (data === undefined) throw new UsageError('say how to score candidates: --val DATA (TF.js and ONNX models) or --eval-cmd CMD (any framework)');
  if (!(METRIC_NAMES as readonly string[]).includes(options.metric)) {
    throw new UsageError(`--metric: unknown metric "${options.metric}" (TF.js scoring measures ${METRIC_NAMES.join(', ')})`);
  }
  if (options.model?.endsWith(ONNX_SUFFIX) || (options.model === undefined && reference instanceof OnnxCheckpoint)) {
    return createOnnxEvaluator(options, reference, data, onProgress);
  }
  const { modelTopology, source } = await topologyFor(options.model, reference);
  const dataset = await loadDataset(data, preprocessingFlags(options), { onProgress });
  const dataWarning = rawPixelsWarning(dataset);
  const { TfjsEvaluator } = await import('../eval/tfjs.js');
  const evaluator = await TfjsEvaluator.create({ modelTopology, modelSource: source, dataset, backend: options.backend, batchSize: options.batchSize });
  const tfjs: TfjsEvaluatorOptions = { modelTopology, modelSource: source, dataset, backend: evaluator.backend, batchSize: options.batchSize };
  try {
    checkWeightsMatch(evaluator.weightSpecs(), reference, source);
  } catch (error) {
    await evaluator.dispose();
    throw error;
  }
  return { evaluator, dataset, tfjs, backend: evaluator.backend, warnings: dataWarning === undefined ? [] : [dataWarning] };
}

async function checkWorkDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined)
    throw new UsageError(`--work-dir ${dir} does not exist`, {
      hint: 'create it, on storage that the evaluation command (and the cluster nodes it runs on) can read',
    });
  if (!info.isDirectory()) throw new UsageError(`--work-dir ${dir} is not a folder`);
}

/**
 * ONNX Runtime on the ingredients' own graph, or on --model's export for ingredients of any format:
 * every float initializer of the model must be a tensor of the reference with the same shape.
 */
async function createOnnxEvaluator(
  options: EvaluationOptions,
  reference: Checkpoint,
  data: string,
  onProgress?: ProgressListener,
): Promise<Omit<EvaluationSetup, 'direction'>> {
  const model = options.model === undefined ? (reference as OnnxCheckpoint) : await OnnxCheckpoint.open(options.model);
  try {
    const warnings = matchInitializers(model, reference);
    const initializers = new Set(model.scan.initializers.map((initializer) => initializer.name));
    const inputs = model.scan.inputs.filter((input) => !initializers.has(input.name));
    let dataset: Dataset;
    const { OnnxEvaluator } = await import('../eval/onnx.js');
    let evaluator;
    if (inputs.length > 1) {
      const named = await loadNamedInputs(
        data,
        inputs.map((input) => input.name),
      );
      evaluator = await OnnxEvaluator.create({ model, data: { kind: 'named', inputs: named }, outputName: options.outputName, batchSize: options.batchSize });
      // The arrays feed the model by name; the data set only carries the labels and names for reports.
      dataset = datasetFromArrays({ name: named.name, path: named.path, x: new Float32Array(0), y: named.y, sampleShape: [0] });
    } else {
      dataset = await loadDataset(data, preprocessingFlags(options), { onProgress });
      evaluator = await OnnxEvaluator.create({ model, data: { kind: 'single', dataset }, outputName: options.outputName, batchSize: options.batchSize });
    }
    const dataWarning = rawPixelsWarning(dataset);
    return { evaluator, dataset, backend: evaluator.description, warnings: dataWarning === undefined ? warnings : [...warnings, dataWarning] };
  } finally {
    if (model !== reference) await model.close();
  }
}

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
      const known = [...tensors.keys()].slice(0, 4).join(', ');
      throw new InputError(
        model.path,
        `initializer "${initializer.name}" is not a tensor of ${reference.path} (it has ${known}${tensors.size > 4 ? ', ...' : ''})`,
        {
          hint: 'export the model from the same code that saved the checkpoints, so the names agree',
        },
      );
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
    if (tensor === undefined) {
      const known = [...tensors.keys()].slice(0, 4).join(', ');
      throw new InputError(source, `model weight "${spec.name}" is not a tensor of ${reference.path} (it has ${known}${tensors.size > 4 ? ', ...' : ''})`);
    }
    if (tensor.shape.join(',') !== spec.shape.join(',')) {
      throw new InputError(
        source,
        `size mismatch for ${spec.name}: [${spec.shape.join(', ')}] in the model vs [${tensor.shape.join(', ')}] in ${reference.path}`,
      );
    }
  }
}

/**
 * What decides an evaluator's scores, for the score cache's key: the command template (and its data),
 * or the model's topology and the data's values (after preprocessing), with the metric and backend.
 */
export async function evaluatorIdentity(setup: EvaluationSetup, options: EvaluationOptions): Promise<Record<string, unknown>> {
  const { metric } = options;
  if (setup.backend === 'command')
    return { kind: 'command', command: options.evalCmd, data: (setup.evaluator as CommandEvaluator).data ?? null, metric, backend: setup.backend };
  const dataset = setup.dataset!;
  const hash = createHash('sha256').update(JSON.stringify(dataset.sampleShape));
  for await (const batch of dataset.batches(4096)) hash.update(new Uint8Array(batch.x.buffer, batch.x.byteOffset, batch.x.byteLength));
  const data = hash.update(new Uint8Array(dataset.y.buffer, dataset.y.byteOffset, dataset.y.byteLength)).digest('hex');
  // A TF.js model is its topology; an ONNX graph is the ingredients' own (the candidate's key names their weights) or --model's file.
  const model =
    setup.tfjs !== undefined
      ? createHash('sha256').update(JSON.stringify(setup.tfjs.modelTopology)).digest('hex')
      : options.model === undefined
        ? 'ingredients'
        : await sha256File(options.model);
  return { kind: setup.tfjs !== undefined ? 'tfjs' : 'onnx', model, data, outputName: options.outputName ?? null, metric, backend: setup.backend };
}
