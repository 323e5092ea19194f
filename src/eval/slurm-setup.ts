import { tmpdir } from 'node:os';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { DEFAULT_RETRY_STATES, RETRYABLE_STATES, SlurmExecutor, splitArguments } from './slurm.js';
import type { ProgressListener } from '../progress.js';

/** The flags the Slurm executor reads (a structural type: the evaluation options hold them all). */
export interface SlurmFlags {
  evalCmd?: string | undefined;
  slurmArgs?: string | undefined;
  retryOn?: string | undefined;
  retries: number;
  workDir?: string | undefined;
  jobs?: number | undefined;
  evalTimeout?: number | undefined;
  scoreCache?: string | undefined;
}

/** The Slurm executor --executor slurm asks for, with what the user should know about its set-up. */
export function slurmExecutor(options: SlurmFlags, onProgress?: ProgressListener): { executor: SlurmExecutor; workDir: string; warnings: string[] } {
  const retryOn =
    options.retryOn === undefined
      ? [...DEFAULT_RETRY_STATES]
      : options.retryOn
          .split(',')
          .map((state) => state.trim().toUpperCase())
          .filter(Boolean);
  for (const state of retryOn) {
    if (!(RETRYABLE_STATES as readonly string[]).includes(state)) {
      throw new UsageError(`--retry-on: ${state} is not a job state soup re-submits (it knows ${RETRYABLE_STATES.join(', ')})`);
    }
  }
  const sbatchArgs = splitArguments(options.slurmArgs ?? '');
  // soup reads each job's stdout from the file it names, and runs one job per candidate.
  const taken = sbatchArgs.find((arg) => /^(-o|-e|-a|--output|--error|--array|--wrap)(=|$)/.test(arg) || /^-[oea]./.test(arg));
  if (taken !== undefined) {
    throw new UsageError(`--slurm-args: ${taken} is soup's to set (it reads each job's output file, and submits one job per candidate)`, {
      hint: 'leave it out; job scripts and output files go to --work-dir',
    });
  }
  const workDir = path.resolve(options.workDir ?? tmpdir());
  const warnings: string[] = [];
  if (options.workDir === undefined || workDir === path.resolve(tmpdir())) {
    warnings.push(
      `--work-dir is ${workDir}, this machine's temporary folder: Slurm jobs on other nodes cannot read candidates written there; pass --work-dir on a filesystem every node shares`,
    );
  }
  const executor = new SlurmExecutor({
    command: options.evalCmd!,
    sbatchArgs,
    workDir,
    maxJobs: options.jobs ?? Number.POSITIVE_INFINITY,
    retries: options.retries,
    retryOn,
    timeoutSeconds: options.evalTimeout,
    jobLog: options.scoreCache === undefined ? undefined : `${options.scoreCache}.jobs`,
    onProgress,
  });
  // Absolute, so that a re-run from another folder still finds (and removes) an earlier run's candidates.
  return { executor, workDir, warnings };
}
