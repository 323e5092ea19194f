/**
 * THE evaluator factory: picks the runtime that scores for the options (the first in RUNTIMES that
 * takes them) and builds its evaluator, checked against the ingredients before any scoring.
 */
import type { Checkpoint } from '../checkpoint/types.js';
import type { ProgressListener } from '../progress.js';
import { METRIC_NAMES, metricDirection } from './metrics.js';
import { commandRuntime } from './runtimes/command.js';
import { onnxRuntime } from './runtimes/onnx.js';
import { tfjsRuntime } from './runtimes/tfjs.js';
import type { EvaluationOptions, EvaluationSetup, Runtime } from './runtime.js';

export type { EvaluationOptions, EvaluationSetup, Runtime };

/** In order of precedence: --eval-cmd wins over the built-in runtimes, ONNX models over TF.js. */
const RUNTIMES: readonly Runtime[] = [commandRuntime, onnxRuntime, tfjsRuntime];

/**
 * Builds the evaluator the options ask for: TF.js or ONNX Runtime on the data (with the ingredients'
 * own model or --model's), or the user's --eval-cmd. Everything is checked before any scoring.
 */
export async function createEvaluator(
  options: EvaluationOptions,
  reference: Checkpoint,
  data: string | undefined = options.val,
  onProgress?: ProgressListener,
): Promise<EvaluationSetup> {
  // An unknown built-in metric is named as such (by the runtime) before its direction is asked for.
  const builtIn = (METRIC_NAMES as readonly string[]).includes(options.metric);
  const direction = options.evalCmd !== undefined || builtIn ? metricDirection(options.metric, options) : undefined;
  const runtime = RUNTIMES.find((candidate) => candidate.takes(options, reference))!;
  const setup = await runtime.create(options, reference, data, onProgress);
  return { ...setup, direction: direction ?? metricDirection(options.metric, options) };
}

/**
 * Of checkpoints that hold the same tensors (a merge's base, then its models), the one to score
 * through: the first, whose format candidates take, unless only a later one carries a model that a
 * runtime runs (a safetensors base beside TF.js or ONNX models). --eval-cmd and --model bring their own.
 */
export function scoringReference(options: EvaluationOptions, checkpoints: readonly Checkpoint[]): Checkpoint {
  const first = checkpoints[0]!;
  if (options.evalCmd !== undefined || options.model !== undefined) return first;
  const runnable = (checkpoint: Checkpoint): boolean => RUNTIMES.some((runtime) => runtime.runs?.(checkpoint) === true);
  return runnable(first) ? first : (checkpoints.find(runnable) ?? first);
}
