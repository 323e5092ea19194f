/** What the runtimes share: the options they read, what they build, and the shape of a runtime. */
import type { Checkpoint } from '../checkpoint/types.js';
import type { Dataset } from '../data/dataset.js';
import type { Preprocessing } from '../data/preprocess.js';
import type { ProgressListener } from '../progress.js';
import type { BackendName } from './backend.js';
import type { Evaluator } from './evaluator.js';
import type { ExecutorName } from './executor.js';
import type { Direction } from './metrics.js';
import type { SlurmExecutor } from './slurm.js';
import type { TfjsEvaluatorOptions } from './tfjs.js';

/** What decides how candidates are scored: the evaluation flags of greedy, eval, compare, learned, evolve, interpolate. */
export interface EvaluationOptions extends Preprocessing {
  val?: string | undefined;
  evalCmd?: string | undefined;
  evalTimeout?: number | undefined;
  model?: string | undefined;
  outputName?: string | undefined;
  metric: string;
  backend?: BackendName | undefined;
  batchSize: number;
  jobs?: number | undefined;
  workDir?: string | undefined;
  maximize?: boolean | undefined;
  minimize?: boolean | undefined;
  executor: ExecutorName;
  slurmArgs?: string | undefined;
  retries: number;
  retryOn?: string | undefined;
  /** Slurm keeps its journal of submitted jobs beside the score cache. */
  scoreCache?: string | undefined;
}

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
  /**
   * What decides the evaluator's scores, for the score cache's key: the command template (and its
   * data), or the model and the data's values (after preprocessing), with the metric and backend.
   */
  identity(): Promise<Record<string, unknown>>;
}

/** One way of scoring candidates: a module under eval/runtimes/ and one line in RUNTIMES. */
export interface Runtime {
  readonly name: string;
  /** Whether this runtime scores for these options and ingredients (the first runtime that does is used). */
  takes(options: EvaluationOptions, reference: Checkpoint): boolean;
  /** Whether the checkpoint carries a model this runtime runs without --model (a TF.js folder, an ONNX graph). */
  runs?(checkpoint: Checkpoint): boolean;
  create(
    options: EvaluationOptions,
    reference: Checkpoint,
    data: string | undefined,
    onProgress?: ProgressListener,
  ): Promise<Omit<EvaluationSetup, 'direction'>>;
}
