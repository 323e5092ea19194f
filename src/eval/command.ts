import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../checkpoint/types.js';
import { chooseOutput, fileSuffixOf, fixedMetadata, planOutput, writeCheckpoint } from '../checkpoint/writer.js';
import { ExitCode, InterruptedError, SoupError, throwIfAborted } from '../errors.js';
import { candidateProducer, type CandidateWeights } from '../soup/candidate.js';
import type { Evaluation, EvaluationContext, Evaluator } from './evaluator.js';
import type { EvalJob, Executor } from './executor.js';

/** How much of a command's output we keep: enough for an error message, never unbounded. */
const KEEP_BYTES = 64 * 1024;
/** An evaluation that prints more than this on stdout is stuck in a loop or dumping data, not reporting metrics. */
export const MAX_STDOUT_BYTES = 16 * 1024 * 1024;

export class EvalCommandError extends SoupError {
  constructor(message: string) {
    super(message, ExitCode.badInput);
  }
}

/** Quotes a path for sh, so spaces, quotes and $(...) in it are data, never code. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * Parses what an evaluation command printed: its last non-empty stdout line must be a JSON object
 * of numeric metrics, or a bare number (taken as the value of `metric`).
 */
export function parseCommandOutput(stdout: string, metric: string): Record<string, number> {
  const last = stdout
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .at(-1);
  if (last === undefined) throw new Error('printed nothing on stdout');
  const shown = last.length > 200 ? `${last.slice(0, 200)}...` : last;
  let parsed: unknown;
  try {
    parsed = JSON.parse(last);
  } catch {
    throw new Error(`its last line is neither JSON nor a number: ${JSON.stringify(shown)}`);
  }
  if (typeof parsed === 'number') parsed = { [metric]: parsed };
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new Error(`its last line is neither a JSON object nor a number: ${JSON.stringify(shown)}`);
  }
  const metrics: Record<string, number> = {};
  for (const [key, value] of Object.entries(parsed)) if (typeof value === 'number') metrics[key] = value;
  if (metric in parsed && !(metric in metrics)) {
    throw new Error(`it reported ${metric} = ${JSON.stringify((parsed as Record<string, unknown>)[metric])}, not a number`);
  }
  if (!(metric in metrics)) {
    throw new Error(`its output has no numeric "${metric}" (it has: ${Object.keys(parsed).join(', ') || 'nothing'}); pick one with --metric`);
  }
  if (!Number.isFinite(metrics[metric])) throw new Error(`it reported ${metric} = ${metrics[metric]}, not a finite number`);
  return metrics;
}

export interface CommandEvaluatorOptions {
  /** The command, with {ckpt} where the candidate's path goes. */
  command: string;
  metric: string;
  /** The ingredient whose format, dtypes and metadata the temporary checkpoints copy. */
  reference: Checkpoint;
  /** Seconds before the command is killed; 0 or undefined for none. */
  timeoutSeconds?: number | undefined;
  /** A data set path to put where the command says {data}. */
  data?: string | undefined;
  /** Where candidate checkpoints are written: a folder the command (or the cluster nodes it submits to) can read. Default: the system temporary folder. */
  workDir?: string | undefined;
  /** Where the command runs: here (the default) or as cluster jobs (slurm). */
  executor?: Executor | undefined;
}

/**
 * Scores candidates with a user's command, for models of any framework: each candidate is written
 * as a temporary checkpoint in the ingredients' format, the command is run on it, then it is removed.
 */
export class CommandEvaluator implements Evaluator {
  readonly metrics: readonly string[];
  /** Each evaluation has its own candidate checkpoint and process, so several can run at once (--jobs). */
  readonly concurrent = true;
  readonly executor: Executor;

  constructor(private readonly options: CommandEvaluatorOptions) {
    this.metrics = [options.metric];
    this.executor = options.executor ?? new LocalExecutor(options);
  }

  /** Evaluations to run at once when --jobs does not say: a cluster takes them all. */
  get parallelism(): number {
    return this.executor.parallelism;
  }

  get description(): string {
    return `command: ${this.options.command}`;
  }

  /** Where {data} points, if the command takes a data set. */
  get data(): string | undefined {
    return this.options.data;
  }

  async evaluate(candidate: CandidateWeights, signal?: AbortSignal, _bound?: unknown, context: EvaluationContext = {}): Promise<Evaluation> {
    const { reference } = this.options;
    // Same format as the ingredients: a .safetensors or torch.save file, or a folder (TF.js, sharded).
    const temp = path.join(this.options.workDir ?? tmpdir(), `soup-candidate-${process.pid}-${randomBytes(4).toString('hex')}${fileSuffixOf(reference)}`);
    try {
      await writeCheckpoint(chooseOutput(temp, reference), planOutput(reference), fixedMetadata({ ...reference.metadata }), candidateProducer(candidate));
      const label = context.label ?? (candidate.parts ?? []).map((part) => part.checkpoint.name).join(' + ');
      const stdout = await this.executor.run({ command: this.commandFor(temp), label, candidate: temp, ...(context.key === undefined ? {} : { key: context.key }) }, signal);
      try {
        return { metrics: parseCommandOutput(stdout, this.options.metric) };
      } catch (error) {
        throw new EvalCommandError(`evaluation command \`${this.options.command}\`: ${(error as Error).message}`);
      }
    } finally {
      await rm(temp, { recursive: true, force: true });
    }
  }

  async dispose(): Promise<void> {
    await this.executor.dispose();
  }

  private commandFor(checkpointPath: string): string {
    let command = this.options.command.replaceAll('{ckpt}', shellQuote(checkpointPath));
    if (this.options.data !== undefined) command = command.replaceAll('{data}', shellQuote(this.options.data));
    return command;
  }
}

/** The local executor: runs each command here, in its own process group, as --jobs allows. */
export class LocalExecutor implements Executor {
  readonly name = 'local';
  readonly parallelism = 1;

  constructor(private readonly options: { command: string; timeoutSeconds?: number | undefined }) {}

  async dispose(): Promise<void> {}

  run({ command }: EvalJob, signal?: AbortSignal): Promise<string> {
    throwIfAborted(signal);
    const timeout = (this.options.timeoutSeconds ?? 0) * 1000;
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
      let stdout = '';
      let stderr = '';
      let stdoutBytes = 0;
      const keep = (text: string, chunk: Buffer): string => (text + chunk.toString('utf8')).slice(-KEEP_BYTES);
      child.stdout.on('data', (chunk: Buffer) => {
        stdout = keep(stdout, chunk);
        stdoutBytes += chunk.length;
        if (stdoutBytes > MAX_STDOUT_BYTES && why === undefined) kill('flood');
      });
      child.stderr.on('data', (chunk: Buffer) => (stderr = keep(stderr, chunk)));
      let why: 'timeout' | 'interrupt' | 'flood' | undefined;
      // The command runs in its own process group so that a timeout or Ctrl-C stops its children too.
      const kill = (reason: 'timeout' | 'interrupt' | 'flood'): void => {
        why = reason;
        try {
          process.kill(-child.pid!, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      };
      const timer = timeout > 0 ? setTimeout(() => kill('timeout'), timeout) : undefined;
      const onAbort = (): void => kill('interrupt');
      signal?.addEventListener('abort', onAbort, { once: true });
      child.on('error', (error) => reject(new EvalCommandError(`cannot run the evaluation command: ${error.message}`)));
      child.on('close', (code, killedBy) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const tail = lastLines(stderr);
        if (why === 'interrupt') return reject(signal?.reason instanceof SoupError ? signal.reason : new InterruptedError());
        if (why === 'flood') {
          return reject(new EvalCommandError(`evaluation command \`${this.options.command}\` printed more than ${MAX_STDOUT_BYTES / 1024 / 1024} MB on stdout; it should print its metrics as the last line`));
        }
        if (why === 'timeout') {
          return reject(new EvalCommandError(`evaluation command \`${this.options.command}\` timed out after ${this.options.timeoutSeconds} s${tail}`));
        }
        if (code !== 0) {
          const status = killedBy === null ? `exited with code ${code}` : `was killed by ${killedBy}`;
          return reject(new EvalCommandError(`evaluation command \`${this.options.command}\` ${status}${tail}`));
        }
        resolve(stdout);
      });
    });
  }
}

/** The end of a command's stderr, folded into one line for an error message. */
export function lastLines(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  if (lines.length === 0) return '';
  const tail = lines.slice(-3).join(' | ');
  return `; stderr ends: ${tail.length > 300 ? `...${tail.slice(-300)}` : tail}`;
}
