/** --eval-cmd: the user's own command scores each candidate, run here or as Slurm jobs (--executor slurm). */
import { stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { CANDIDATE_PATTERN, describeRemoved, removeDeadLeftovers } from '../../checkpoint/leftovers.js';
import { UsageError } from '../../errors.js';
import { NamingCommandEvaluator } from '../command-naming.js';
import type { Runtime } from '../runtime.js';
import { slurmExecutor } from '../slurm-setup.js';

export const commandRuntime: Runtime = {
  name: 'command',
  takes: (options) => options.evalCmd !== undefined,
  async create(options, reference, data, onProgress) {
    const command = options.evalCmd!;
    if (!command.includes('{ckpt}') && !command.includes('{ckpt_file}')) {
      throw new UsageError("--eval-cmd must contain {ckpt}, where the candidate checkpoint's path goes (or {ckpt_file}, its weights file)", {
        hint: `e.g. --eval-cmd "python eval.py --weights {ckpt}"`,
      });
    }
    if (data !== undefined && !command.includes('{data}')) {
      throw new UsageError(`--eval-cmd has no {data}, so it cannot be pointed at ${data}`, {
        // Only compare takes --test: greedy's hint must not send the user looking for it.
        hint: `put {data} where the data set path goes, or leave out --val${'test' in options ? ' and --test' : ''}`,
      });
    }
    if (options.workDir !== undefined) await checkWorkDir(options.workDir);
    const slurm = options.executor === 'slurm' ? slurmExecutor(options, onProgress) : undefined;
    const evaluator = new NamingCommandEvaluator({
      command,
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
    const identity = { kind: 'command', command, data: data ?? null, metric: options.metric, backend: 'command' };
    return {
      evaluator,
      backend: 'command',
      warnings,
      identity: async () => identity,
      ...(slurm === undefined ? {} : { slurm: slurm.executor }),
    };
  },
};

async function checkWorkDir(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (info === undefined)
    throw new UsageError(`--work-dir ${dir} does not exist`, {
      hint: 'create it, on storage that the evaluation command (and the cluster nodes it runs on) can read',
    });
  if (!info.isDirectory()) throw new UsageError(`--work-dir ${dir} is not a folder`);
}
