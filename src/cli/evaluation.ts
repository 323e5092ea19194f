import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { readModelJson, TfjsCheckpoint, MODEL_JSON } from '../checkpoint/tfjs.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { loadDataset, type Dataset } from '../data/dataset.js';
import { InputError, UsageError } from '../errors.js';
import { BACKENDS } from '../eval/backend.js';
import { CommandEvaluator } from '../eval/command.js';
import type { Evaluator } from '../eval/evaluator.js';
import type { TfjsEvaluatorOptions } from '../eval/tfjs.js';
import { METRIC_NAMES } from '../eval/metrics.js';

/** Options of every command that scores checkpoints (greedy, eval). */
export const evaluationOptions = z.object({
  val: z.string().min(1).optional(),
  evalCmd: z.string().min(1).optional(),
  evalTimeout: z.coerce.number().positive().optional(),
  model: z.string().min(1).optional(),
  metric: z.string().min(1).default('accuracy'),
  backend: z.enum(BACKENDS).optional(),
  batchSize: z.coerce.number().int().positive().default(512),
  jobs: z.coerce.number().int().positive().optional(),
  scale: z.coerce.number().finite().optional(),
  offset: z.coerce.number().finite().optional(),
  workDir: z.string().min(1).optional(),
});
export type EvaluationOptions = z.output<typeof evaluationOptions>;

export interface EvaluationSetup {
  evaluator: Evaluator;
  dataset?: Dataset;
  /** How to build the same TF.js evaluator in a worker thread (absent for --eval-cmd). */
  tfjs?: TfjsEvaluatorOptions;
  /** The TF.js backend in use, or "command" for --eval-cmd. */
  backend: string;
}

/**
 * Builds the evaluator the options ask for: TF.js on --val data (with the ingredients' own
 * topology or --model's), or the user's --eval-cmd. Everything is checked before any scoring.
 */
export async function createEvaluator(options: EvaluationOptions, reference: Checkpoint, data: string | undefined = options.val): Promise<EvaluationSetup> {
  if (options.evalCmd !== undefined) {
    if (!options.evalCmd.includes('{ckpt}')) {
      throw new UsageError('--eval-cmd must contain {ckpt}, where the candidate checkpoint\'s path goes', {
        hint: `e.g. --eval-cmd "python eval.py --weights {ckpt}"`,
      });
    }
    if (data !== undefined && !options.evalCmd.includes('{data}')) {
      throw new UsageError(`--eval-cmd has no {data}, so it cannot be pointed at ${data}`, {
        hint: 'put {data} where the data set path goes, or leave out --val and --test',
      });
    }
    if (options.workDir !== undefined) await checkWorkDir(options.workDir);
    const evaluator = new CommandEvaluator({ command: options.evalCmd, metric: options.metric, reference, timeoutSeconds: options.evalTimeout, data, workDir: options.workDir });
    return { evaluator, backend: 'command' };
  }
  if (data === undefined) throw new UsageError('say how to score candidates: --val DATA (TF.js models) or --eval-cmd CMD (any framework)');
  if (!(METRIC_NAMES as readonly string[]).includes(options.metric)) {
    throw new UsageError(`--metric: unknown metric "${options.metric}" (TF.js scoring measures ${METRIC_NAMES.join(', ')})`);
  }
  const { modelTopology, source } = await topologyFor(options.model, reference);
  const dataset = await loadDataset(data, { scale: options.scale, offset: options.offset });
  const { TfjsEvaluator } = await import('../eval/tfjs.js');
  const evaluator = await TfjsEvaluator.create({ modelTopology, modelSource: source, dataset, backend: options.backend, batchSize: options.batchSize });
  const tfjs: TfjsEvaluatorOptions = { modelTopology, modelSource: source, dataset, backend: evaluator.backend, batchSize: options.batchSize };
  try {
    checkWeightsMatch(evaluator.weightSpecs(), reference, source);
  } catch (error) {
    await evaluator.dispose();
    throw error;
  }
  return { evaluator, dataset, tfjs, backend: evaluator.backend };
}

async function checkWorkDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined) throw new UsageError(`--work-dir ${dir} does not exist`, { hint: 'create it, on storage that the evaluation command (and the cluster nodes it runs on) can read' });
  if (!info.isDirectory()) throw new UsageError(`--work-dir ${dir} is not a folder`);
}

async function topologyFor(model: string | undefined, reference: Checkpoint): Promise<{ modelTopology: Record<string, unknown>; source: string }> {
  if (model !== undefined) {
    const file = model.endsWith('.json') ? model : path.join(model, MODEL_JSON);
    return { modelTopology: (await readModelJson(file)).modelTopology, source: file };
  }
  if (reference instanceof TfjsCheckpoint) return { modelTopology: reference.modelJson.modelTopology, source: path.join(reference.path, MODEL_JSON) };
  throw new UsageError(`${reference.path}: a ${reference.format} checkpoint has no model architecture to run`, {
    hint: 'pass --model model.json (a TF.js model whose weight names match the tensors), or score with --eval-cmd',
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
      throw new InputError(source, `size mismatch for ${spec.name}: [${spec.shape.join(', ')}] in the model vs [${tensor.shape.join(', ')}] in ${reference.path}`);
    }
  }
}

/**
 * What decides an evaluator's scores, for the score cache's key: the command template (and its data),
 * or the model's topology and the data's values (after preprocessing), with the metric and backend.
 */
export function evaluatorIdentity(setup: EvaluationSetup, options: EvaluationOptions): Record<string, unknown> {
  const { metric } = options;
  if (setup.tfjs === undefined) return { kind: 'command', command: options.evalCmd, data: (setup.evaluator as CommandEvaluator).data ?? null, metric, backend: setup.backend };
  const { dataset, modelTopology } = setup.tfjs;
  const data = createHash('sha256').update(JSON.stringify(dataset.sampleShape)).update(new Uint8Array(dataset.x.buffer, dataset.x.byteOffset, dataset.x.byteLength)).update(new Uint8Array(dataset.y.buffer, dataset.y.byteOffset, dataset.y.byteLength)).digest('hex');
  return { kind: 'tfjs', model: createHash('sha256').update(JSON.stringify(modelTopology)).digest('hex'), data, metric, backend: setup.backend };
}
