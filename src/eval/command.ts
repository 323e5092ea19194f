import { tmpdir } from 'node:os';
import type { Checkpoint } from '../checkpoint/types.js';
import { ExitCode, InterruptedError, SoupError, throwIfAborted } from '../errors.js';
import type { CandidateWeights } from '../weights/candidate.js';
import { fillTemplate, shellQuote } from '../shell.js';
import { CandidateWriter } from './candidate-folder.js';
import type { Evaluation, EvaluationContext, Evaluator } from './evaluator.js';
import type { EvalJob, Executor } from './executor.js';
import { killCommand, spawnInOwnGroup } from './process-group.js';

/** How much of a command's output we keep: enough for an error message, never unbounded. */
const KEEP_BYTES = 64 * 1024;
/** An evaluation that prints more than this on stdout is stuck in a loop or dumping data, not reporting metrics. */
export const MAX_STDOUT_BYTES = 16 * 1024 * 1024;

export class EvalCommandError extends SoupError {
  constructor(message: string) {
    super(message, ExitCode.badInput);
  }
}

export { shellQuote };

/** Python's json.dumps writes NaN, Infinity and -Infinity bare, which JSON itself has no words for. */
const PYTHON_NUMBERS: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

/**
 * JSON.parse, also taking the bare NaN, Infinity and -Infinity that Python's json.dumps writes for
 * float('nan') and float('inf'). Each is swapped for a unique string outside string literals, then
 * swapped back for the number after parsing.
 */
function parsePythonJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    const marker = `\u0000soup-${Math.random().toString(36).slice(2)}:`;
    let replaced = '';
    let swapped = false;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '"') {
        // Copy a string literal as it is, escapes included.
        let j = i + 1;
        while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
        replaced += text.slice(i, j + 1);
        i = j;
        continue;
      }
      const word = /^(?:-Infinity|Infinity|NaN)(?![\w.])/.exec(text.slice(i, i + 10))?.[0];
      const boundary = i === 0 || /[\s,:[]/.test(text[i - 1]!);
      if (word !== undefined && boundary) {
        replaced += JSON.stringify(marker + word);
        i += word.length - 1;
        swapped = true;
        continue;
      }
      replaced += c;
    }
    if (!swapped) throw error;
    return JSON.parse(replaced, (_key, value: unknown) =>
      typeof value === 'string' && value.startsWith(marker) ? PYTHON_NUMBERS[value.slice(marker.length)] : value,
    );
  }
}

/**
 * Parses what an evaluation command printed: its last non-empty stdout line must be a JSON object
 * of numeric metrics, or a bare number (taken as the value of `metric`). NaN, Infinity and -Infinity
 * are numbers here, as Python prints them: a diverged model's loss is NaN, and that is a score (the
 * worst one), not a broken script.
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
    parsed = parsePythonJson(last);
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
  return metrics;
}

export interface CommandEvaluatorOptions {
  /** The command, with {ckpt} where the candidate's path goes ({ckpt_file}: its weights file alone). */
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

  private writer: CandidateWriter | undefined;

  constructor(private readonly options: CommandEvaluatorOptions) {
    this.metrics = [options.metric];
    // A placeholder that cannot be quoted where it stands is refused now, before any slow work.
    fillTemplate(options.command, this.placeholders('candidate'));
    this.executor = options.executor ?? new LocalExecutor(options);
  }

  /** Evaluations to run at once when --jobs does not say: a cluster takes them all. */
  get parallelism(): number {
    return this.executor.parallelism;
  }

  /** What each placeholder stands for: filled in one pass, so no value is ever read as a template. */
  private placeholders(checkpointPath: string, checkpointFile = checkpointPath): Record<string, string> {
    const values: Record<string, string> = { ckpt: checkpointPath, ckpt_file: checkpointFile };
    if (this.options.data !== undefined) values.data = this.options.data;
    return values;
  }

  get description(): string {
    return `command: ${this.options.command}`;
  }

  async evaluate(candidate: CandidateWeights, signal?: AbortSignal, _bound?: unknown, context: EvaluationContext = {}): Promise<Evaluation> {
    // Laid out like the ingredients: a model folder with its config and tokenizer, or a file of their format.
    this.writer ??= new CandidateWriter(this.options.reference, this.options.workDir ?? tmpdir());
    const written = await this.writer.write(candidate);
    try {
      const label = context.label ?? (candidate.parts ?? []).map((part) => part.checkpoint.name).join(' + ');
      const command = fillTemplate(this.options.command, this.placeholders(written.ckpt, written.ckptFile));
      const stdout = await this.executor.run({ command, label, candidate: written.ckpt, ...(context.key === undefined ? {} : { key: context.key }) }, signal);
      try {
        return { metrics: parseCommandOutput(stdout, this.options.metric) };
      } catch (error) {
        throw new EvalCommandError(`evaluation command \`${this.options.command}\`: ${(error as Error).message}`);
      }
    } finally {
      await written.remove();
    }
  }

  async dispose(): Promise<void> {
    await this.executor.dispose();
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
      const child = spawnInOwnGroup(command);
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
        killCommand(child);
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
          return reject(
            new EvalCommandError(
              `evaluation command \`${this.options.command}\` printed more than ${MAX_STDOUT_BYTES / 1024 / 1024} MB on stdout; it should print its metrics as the last line`,
            ),
          );
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
  const lines = stderr
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line !== '');
  if (lines.length === 0) return '';
  const tail = lines.slice(-3).join(' | ');
  return `; stderr ends: ${tail.length > 300 ? `...${tail.slice(-300)}` : tail}`;
}
