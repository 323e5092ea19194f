/**
 * Executors: where an --eval-cmd evaluation runs. The command evaluator writes the candidate and
 * reads the score; an executor only runs one ready command line and hands back its stdout, here
 * (local, in command.ts) or as a cluster job (slurm.ts). A new engine is one more module.
 */

/** One evaluation: a shell command line with every placeholder filled in. */
export interface EvalJob {
  command: string;
  /** What is scored, for job names, progress and messages: "checkpoint-1000 (+2 in soup)". */
  label: string;
  /** The candidate checkpoint the command reads. */
  candidate: string;
  /** The candidate's identity across runs (the score cache's key), when a journal is kept. */
  key?: string;
}

export interface Executor {
  readonly name: 'local' | 'slurm';
  /** Evaluations to run at once when --jobs does not say. */
  readonly parallelism: number;
  /**
   * Runs the command to its end and resolves to its stdout; rejects with an EvalCommandError when
   * the command fails, and with the signal's reason once an aborted command has really stopped.
   */
  run(job: EvalJob, signal?: AbortSignal): Promise<string>;
  /** Stops whatever is still running and waits for it. */
  dispose(): Promise<void>;
}

export const EXECUTORS = ['local', 'slurm'] as const;
export type ExecutorName = (typeof EXECUTORS)[number];
