import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFile, open, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ExitCode, InterruptedError, SoupError, UsageError, throwIfAborted, type SoupErrorOptions } from '../errors.js';
import type { ProgressListener } from '../progress.js';
import { MAX_STDOUT_BYTES, lastLines, shellQuote } from './command.js';
import type { EvalJob, Executor } from './executor.js';

const run = promisify(execFile);

/** States in which Slurm ends a job for the cluster's reasons, not the command's: re-submitted by default. */
export const DEFAULT_RETRY_STATES = ['NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL'] as const;
/** States --retry-on may name. */
export const RETRYABLE_STATES = ['NODE_FAIL', 'PREEMPTED', 'BOOT_FAIL', 'TIMEOUT', 'CANCELLED', 'OUT_OF_MEMORY', 'DEADLINE'] as const;
/** Job states after which Slurm runs nothing more of the job. */
const TERMINAL = new Set([
  'COMPLETED',
  'FAILED',
  'CANCELLED',
  'TIMEOUT',
  'NODE_FAIL',
  'PREEMPTED',
  'BOOT_FAIL',
  'DEADLINE',
  'OUT_OF_MEMORY',
  'REVOKED',
  'SPECIAL_EXIT',
]);
/** A job squeue no longer knows (purged, or the controller lost its state) is called this. */
const VANISHED = 'VANISHED';
/** How much of a job's stdout is read back: the metrics are on its last line. */
const TAIL_BYTES = 64 * 1024;

export interface SlurmExecutorOptions {
  /** The user's command template, for messages. */
  command: string;
  /** Extra sbatch arguments (--slurm-args, already split). */
  sbatchArgs: readonly string[];
  /** Where job scripts and output files go, beside the candidates: a folder the nodes share. */
  workDir: string;
  /** Jobs queued or running at once. */
  maxJobs: number;
  /** Re-submissions of a job that ended in one of `retryOn`. */
  retries: number;
  retryOn: readonly string[];
  /** Seconds a job may run before soup cancels it (--eval-timeout). */
  timeoutSeconds?: number | undefined;
  /** A journal of submitted jobs (beside --score-cache), so a re-run finds the jobs of a driver that died. */
  jobLog?: string | undefined;
  onProgress?: ProgressListener | undefined;
  /** Seconds between squeue polls: the first after a change, and the most it grows to. */
  poll?: { min: number; max: number };
}

/** A job's command failed, or Slurm ended the job for a reason soup does not retry: the evaluation failed (exit 2). */
export class SlurmJobError extends SoupError {
  constructor(message: string, options?: SoupErrorOptions) {
    super(message, ExitCode.badInput, options);
  }
}

/** One Slurm job as --json reports it. */
export interface SlurmJobRecord {
  id: string;
  label: string;
  /** The state it ended in (or the last one seen). */
  state: string;
  /** Seconds from submission until it was seen running, and from then until it ended; null when not seen. */
  queuedSeconds: number | null;
  runningSeconds: number | null;
  output: string;
  /** 1 for the first submission of a candidate, 2 for its first re-submission, ... */
  attempt: number;
  /** Submitted by an earlier run of soup and waited for (or read back) by this one. */
  reattached?: true;
}

interface JobFiles {
  script: string;
  out: string;
  err: string;
  rc: string;
}

interface LogEntry extends JobFiles {
  key: string;
  id: string;
  label: string;
  candidate: string;
}

interface Tracked {
  id: string;
  record: SlurmJobRecord;
  submittedAt: number;
  /** Date.now() at submission, to compare with Slurm's own start and end times. */
  submittedWall: number;
  startedAt?: number;
  state: string;
  reason: string;
  files: JobFiles;
  missing: number;
  timedOut?: boolean;
  settle: () => void;
}

/**
 * Runs each evaluation as one Slurm batch job: the command line goes into a job script beside the
 * candidate, sbatch queues it, one squeue poll follows every job in flight, and the score is read
 * from the job's output file once the script has written the command's exit code. Jobs that end for
 * the cluster's reasons are re-submitted; Ctrl-C cancels every job and waits until Slurm has ended them.
 */
export class SlurmExecutor implements Executor {
  readonly name = 'slurm';
  readonly records: SlurmJobRecord[] = [];
  private readonly tracked = new Map<string, Tracked>();
  private readonly running = new Set<Promise<unknown>>();
  private readonly closing = new AbortController();
  private readonly waiting: (() => void)[] = [];
  private inFlight = 0;
  private done = 0;
  private polling = false;
  private hurry = false;
  private cancelScheduled = false;
  private wake: (() => void) | undefined;
  private log: Promise<Map<string, LogEntry>> | undefined;
  private toCancel = new Set<string>();
  private lastProgress = '';

  constructor(private readonly options: SlurmExecutorOptions) {}

  get parallelism(): number {
    return this.options.maxJobs;
  }

  run(job: EvalJob, signal?: AbortSignal): Promise<string> {
    const promise = this.runJob(job, signal === undefined ? this.closing.signal : AbortSignal.any([signal, this.closing.signal]));
    const settled = promise.then(
      () => {},
      () => {},
    );
    this.running.add(settled);
    void settled.then(() => this.running.delete(settled));
    return promise;
  }

  async dispose(): Promise<void> {
    this.closing.abort(new InterruptedError());
    while (this.running.size > 0) await Promise.all([...this.running]);
  }

  private async runJob(job: EvalJob, signal: AbortSignal): Promise<string> {
    throwIfAborted(signal);
    if (job.key !== undefined && this.options.jobLog !== undefined) {
      const earlier = await this.reattach(job, signal);
      if (earlier !== undefined) return earlier;
    }
    for (let attempt = 1; ; attempt++) {
      await this.acquire(signal);
      let tracked: Tracked;
      try {
        tracked = await this.submit(job, attempt, signal);
        await this.follow(tracked, signal);
      } finally {
        this.release();
      }
      const outcome = await this.conclude(tracked, job.label);
      if (outcome.stdout !== undefined) return outcome.stdout;
      if (attempt > this.options.retries) {
        throw new SlurmJobError(
          `evaluation of ${job.label}: Slurm job ${tracked.id} ${outcome.why}; gave up after ${this.options.retries} re-submission${this.options.retries === 1 ? '' : 's'} (--retries)`,
        );
      }
    }
  }

  /**
   * The job an earlier run submitted for this candidate, when its journal names one: waited for while
   * Slurm still runs it, read back when it finished after that run died; undefined when it must be run again.
   */
  private async reattach(job: EvalJob, signal: AbortSignal): Promise<string | undefined> {
    const entry = (await this.loadLog()).get(job.key!);
    if (entry === undefined) return undefined;
    const [state] = (await this.query([entry.id])).get(entry.id) ?? [VANISHED, ''];
    const record: SlurmJobRecord = {
      id: entry.id,
      label: job.label,
      state,
      queuedSeconds: null,
      runningSeconds: null,
      output: entry.out,
      attempt: 1,
      reattached: true,
    };
    const waited = !TERMINAL.has(state) && state !== VANISHED;
    if (waited) {
      this.records.push(record);
      await this.acquire(signal);
      try {
        const tracked = this.track(entry.id, record, { script: entry.script, out: entry.out, err: entry.err, rc: entry.rc });
        await this.follow(tracked, signal);
      } finally {
        this.release();
      }
    }
    const code = await readExitCode(entry.rc);
    const stdout = code === 0 ? await readTail(entry.out) : undefined;
    await removeFiles([entry.script, entry.rc, entry.out, entry.err, ...(entry.candidate === job.candidate ? [] : [entry.candidate])]);
    if (stdout === undefined) return undefined;
    if (!waited) this.records.push(record);
    this.done++;
    this.report();
    return stdout;
  }

  private async submit(job: EvalJob, attempt: number, signal: AbortSignal): Promise<Tracked> {
    const base = path.join(this.options.workDir, `soup-job-${process.pid}-${randomBytes(4).toString('hex')}`);
    const files: JobFiles = { script: `${base}.sh`, out: `${base}.out`, err: `${base}.err`, rc: `${base}.rc` };
    // The script records the command's exit code itself, so the outcome is known from the shared
    // folder even when Slurm has forgotten the job (a driver that comes back after MinJobAge).
    await writeFile(
      files.script,
      `#!/bin/sh\n# soup evaluation: ${job.label.replace(/\n/g, ' ')}\ntrap 'exit 143' TERM INT\n/bin/sh -c ${shellQuote(job.command)}\nstatus=$?\necho $status > ${shellQuote(`${files.rc}.part`)} && mv ${shellQuote(`${files.rc}.part`)} ${shellQuote(files.rc)}\nexit $status\n`,
      { mode: 0o755 },
    );
    const args = [
      '--parsable',
      '--no-requeue',
      `--job-name=${`soup: ${job.label}`.slice(0, 120)}`,
      `--output=${slurmFilename(files.out)}`,
      `--error=${slurmFilename(files.err)}`,
      ...this.options.sbatchArgs,
      files.script,
    ];
    let stdout: string;
    try {
      ({ stdout } = await run('sbatch', args, { signal }));
    } catch (error) {
      await removeFiles([files.script]);
      throwIfAborted(signal);
      throw slurmCommandError('sbatch', error, 'check --slurm-args: sbatch was run as sbatch --parsable --no-requeue ... [--slurm-args] SCRIPT');
    }
    const id = stdout.trim().split(';')[0]!;
    if (!/^\d+(_\d+)?$/.test(id)) throw new SoupError(`sbatch printed ${JSON.stringify(stdout.trim())} instead of a job id`, 1);
    const record: SlurmJobRecord = { id, label: job.label, state: 'PENDING', queuedSeconds: null, runningSeconds: null, output: files.out, attempt };
    this.records.push(record);
    if (job.key !== undefined && this.options.jobLog !== undefined) {
      const entry: LogEntry = { key: job.key, id, label: job.label, candidate: job.candidate, ...files };
      (await this.loadLog()).set(job.key, entry);
      await appendFile(this.options.jobLog, `${JSON.stringify(entry)}\n`);
    }
    return this.track(id, record, files);
  }

  private track(id: string, record: SlurmJobRecord, files: JobFiles): Tracked {
    const tracked: Tracked = {
      id,
      record,
      submittedAt: performance.now(),
      submittedWall: Date.now(),
      state: record.state,
      reason: '',
      files,
      missing: 0,
      settle: () => {},
    };
    this.tracked.set(id, tracked);
    this.report();
    if (!this.polling) {
      this.polling = true;
      void this.poll();
    } else {
      this.hurry = true;
      this.wakePoller();
    }
    return tracked;
  }

  /** Waits until Slurm has ended the job; on abort, cancels it first (and still waits). */
  private async follow(tracked: Tracked, signal: AbortSignal): Promise<void> {
    const ended = new Promise<void>((resolve) => (tracked.settle = resolve));
    const onAbort = (): void => this.cancel(tracked.id);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      await ended;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
    if (signal.aborted) {
      await this.awaitGone(tracked.id);
      await removeFiles([...Object.values(tracked.files), `${tracked.files.rc}.part`]);
      throw signal.reason instanceof Error ? signal.reason : new InterruptedError();
    }
  }

  /** What an ended job means: its stdout, or why it must be run again; a failed command throws. */
  private async conclude(tracked: Tracked, label: string): Promise<{ stdout?: string; why: string }> {
    const { files, state, reason, id } = tracked;
    const code = await readExitCode(files.rc);
    if (tracked.timedOut === true) {
      await this.awaitGone(id);
      await removeFiles([files.script, files.rc, `${files.rc}.part`]);
      throw new SlurmJobError(
        `evaluation of ${label}: \`${this.options.command}\` timed out after ${this.options.timeoutSeconds} s in Slurm job ${id}; its output is in ${files.out}`,
      );
    }
    if (code === 0) {
      const stdout = await readTail(files.out);
      await removeFiles(Object.values(files));
      return { stdout, why: '' };
    }
    // Slurm's state is the truth about the job: a node that failed or a job cancelled also stops the
    // command, which then exits non-zero. Its exit code counts only when the job ended by itself.
    const endedByItself = ['COMPLETED', 'FAILED', 'COMPLETING', VANISHED].includes(state);
    if (code !== undefined && endedByItself) {
      const stderr = await readTail(files.err).catch(() => '');
      await removeFiles([files.script, files.rc]);
      throw new SlurmJobError(
        `evaluation of ${label}: \`${this.options.command}\` exited with code ${code} in Slurm job ${id}; its output is in ${files.out}${lastLines(stderr)}`,
      );
    }
    const why = `ended ${state}${reason === '' || reason === 'None' ? '' : ` (${reason})`} before the command finished`;
    if (state === VANISHED || (state !== 'COMPLETED' && state !== 'FAILED' && this.options.retryOn.includes(state))) {
      await removeFiles(Object.values(files));
      return { why };
    }
    await removeFiles([files.script]);
    const hint =
      state === 'TIMEOUT'
        ? 'give it more time (--slurm-args "--time=..."), or add TIMEOUT to --retry-on'
        : state === 'CANCELLED'
          ? 'someone cancelled it (scancel); add CANCELLED to --retry-on to run it again instead'
          : `add ${state} to --retry-on to run such jobs again`;
    throw new SlurmJobError(`evaluation of ${label}: Slurm job ${id} ${why}; its output is in ${files.out}`, { hint });
  }

  /** One squeue for every job in flight, at a pace that slows while nothing changes. */
  private async poll(): Promise<void> {
    const { min, max } = this.options.poll ?? { min: 0.2, max: 10 };
    let interval = min;
    let failures = 0;
    for (;;) {
      // Checked right before the loop ends, so that a job tracked after it starts a new loop.
      if (this.tracked.size === 0) {
        this.polling = false;
        return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, interval * 1000);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
      this.hurry = false;
      const ids = [...this.tracked.keys()];
      if (ids.length === 0) continue;
      let states: Awaited<ReturnType<SlurmExecutor['query']>>;
      try {
        states = await this.query(ids);
        failures = 0;
      } catch (error) {
        // The controller may be restarting: keep waiting, and say so once it lasts.
        if (++failures % 10 === 5)
          this.options.onProgress?.({
            kind: 'warning',
            message: `squeue has failed ${failures} times in a row (${(error as Error).message}); still waiting for Slurm jobs ${ids.join(', ')}`,
          });
        interval = Math.min(max, interval * 1.15);
        continue;
      }
      let changed = false;
      const now = performance.now();
      for (const id of ids) {
        const tracked = this.tracked.get(id)!;
        const [state, reason, start, end] = states.get(id) ?? [VANISHED, '', '', ''];
        if (state === VANISHED && ++tracked.missing < 3) continue;
        if (state !== tracked.state) changed = true;
        tracked.state = state;
        tracked.reason = reason;
        tracked.record.state = state;
        if (state === 'RUNNING' && tracked.startedAt === undefined) {
          tracked.startedAt = now;
          tracked.record.queuedSeconds = round((now - tracked.submittedAt) / 1000);
        }
        const timeout = this.options.timeoutSeconds;
        if (timeout !== undefined && tracked.startedAt !== undefined && !tracked.timedOut && now - tracked.startedAt > timeout * 1000) {
          tracked.timedOut = true;
          this.cancel(id);
        }
        // COMPLETING is the epilog: the command is over once its exit code is on disk.
        const code = state === 'COMPLETING' ? await readExitCode(tracked.files.rc) : undefined;
        if (code !== undefined) tracked.record.state = code === 0 ? 'COMPLETED' : 'FAILED';
        if (TERMINAL.has(state) || state === VANISHED || code !== undefined) {
          if (tracked.startedAt !== undefined) tracked.record.runningSeconds = round((now - tracked.startedAt) / 1000);
          else recordSlurmTimes(tracked, start, end, now);
          this.tracked.delete(id);
          this.done++;
          changed = true;
          tracked.settle();
        }
      }
      if (changed) this.report();
      interval = changed || this.hurry ? min : Math.min(max, interval * 1.15);
    }
  }

  /** Each job's state and reason, by id; a job squeue no longer knows is absent. */
  private async query(ids: readonly string[]): Promise<Map<string, [string, string, string, string]>> {
    const states = new Map<string, [string, string, string, string]>();
    try {
      const { stdout } = await run('squeue', ['-h', '--states=all', `--jobs=${ids.join(',')}`, '--format=%i|%T|%r|%S|%e']);
      for (const line of stdout.split('\n')) {
        const [id, state, reason, start, end] = line.trim().split('|');
        if (id !== undefined && state !== undefined && id !== '') states.set(id, [state, reason ?? '', start ?? '', end ?? '']);
      }
    } catch (error) {
      // Every id purged: squeue says "Invalid job id specified" and exits 1.
      if (!/Invalid job id/i.test(String((error as { stderr?: string }).stderr ?? ''))) throw slurmCommandError('squeue', error);
    }
    return states;
  }

  /**
   * Waits (up to 15 s) until Slurm no longer lists a cancelled job as pending, running or completing:
   * its processes may still be ending on the node, and soup leaves neither a job nor its files behind.
   */
  private async awaitGone(id: string): Promise<void> {
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline) {
      const { stdout } = await run('squeue', ['-h', '--states=PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED,REQUEUED', `--jobs=${id}`, '--format=%i']).catch(
        () => ({ stdout: '' }),
      );
      if (stdout.trim() === '') return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Cancellations asked for in the same moment go out as one scancel. */
  private cancel(id: string): void {
    this.toCancel.add(id);
    if (this.cancelScheduled) return;
    this.cancelScheduled = true;
    setImmediate(() => {
      const ids = [...this.toCancel];
      this.toCancel = new Set();
      this.cancelScheduled = false;
      void run('scancel', ids)
        .catch(() => {})
        .then(() => {
          this.hurry = true;
          this.wakePoller();
        });
    });
  }

  private wakePoller(): void {
    this.wake?.();
  }

  private async acquire(signal: AbortSignal): Promise<void> {
    while (this.inFlight >= this.options.maxJobs) {
      throwIfAborted(signal);
      await new Promise<void>((resolve) => {
        const onAbort = (): void => resolve();
        signal.addEventListener('abort', onAbort, { once: true });
        this.waiting.push(() => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        });
      });
    }
    throwIfAborted(signal);
    this.inFlight++;
  }

  private release(): void {
    this.inFlight--;
    // Every waiter looks again: one that was aborted meanwhile must not swallow the free slot.
    for (const wake of this.waiting.splice(0)) wake();
  }

  private loadLog(): Promise<Map<string, LogEntry>> {
    this.log ??= readFile(this.options.jobLog!, 'utf8').then(
      (text) => {
        const entries = new Map<string, LogEntry>();
        for (const line of text.split('\n')) {
          try {
            const entry = JSON.parse(line) as LogEntry;
            if (typeof entry.key === 'string' && typeof entry.id === 'string') entries.set(entry.key, entry);
          } catch {
            // A torn last line: that job is run again.
          }
        }
        return entries;
      },
      () => new Map<string, LogEntry>(),
    );
    return this.log;
  }

  /** Queued and running jobs by id, for progress; one event each time that changes. */
  private report(): void {
    const queued: string[] = [];
    const running: string[] = [];
    for (const tracked of this.tracked.values()) (tracked.startedAt === undefined ? queued : running).push(tracked.id);
    const byId = (a: string, b: string): number => Number(a) - Number(b);
    queued.sort(byId);
    running.sort(byId);
    const retried = this.records.filter((record) => record.attempt > 1).length;
    const key = `${queued.join(',')}|${running.join(',')}|${this.done}|${retried}`;
    if (key === this.lastProgress) return;
    this.lastProgress = key;
    this.options.onProgress?.({ kind: 'jobs', queued, running, done: this.done, retried });
  }
}

/** Splits --slurm-args as a shell would (quotes and backslashes), without running a shell. */
export function splitArguments(text: string): string[] {
  const args: string[] = [];
  let current: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else current = (current ?? '') + c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < text.length && '"\\$`'.includes(text[i + 1]!)) current = (current ?? '') + text[++i];
      else current = (current ?? '') + c;
    } else if (c === "'" || c === '"') {
      quote = c;
      current ??= '';
    } else if (c === '\\' && i + 1 < text.length) {
      current = (current ?? '') + text[++i];
    } else if (/\s/.test(c)) {
      if (current !== undefined) args.push(current);
      current = undefined;
    } else {
      current = (current ?? '') + c;
    }
  }
  if (quote !== undefined) throw new UsageError(`--slurm-args has an unclosed ${quote}: ${text}`);
  if (current !== undefined) args.push(current);
  return args;
}

function slurmCommandError(tool: string, error: unknown, hint?: string): SoupError {
  const failure = error as NodeJS.ErrnoException & { stderr?: string };
  if (failure.code === 'ENOENT') {
    return new UsageError(`${tool} is not on PATH: --executor slurm runs Slurm's sbatch, squeue and scancel`, {
      hint: 'run soup on a Slurm login node, or leave out --executor slurm',
    });
  }
  const said = String(failure.stderr ?? failure.message)
    .trim()
    .split('\n')
    .filter(Boolean)
    .join(' | ');
  return new UsageError(`${tool} failed: ${said}`, hint === undefined ? {} : { hint });
}

/**
 * A job that started and ended between two polls: its times from Slurm's own start and end (whole
 * seconds, in local time as squeue prints them), else all of it counted as queued.
 */
function recordSlurmTimes(tracked: Tracked, start: string | undefined, end: string | undefined, now: number): void {
  const started = Date.parse(start ?? '');
  const ended = Date.parse(end ?? '');
  if (Number.isNaN(started) || Number.isNaN(ended)) {
    tracked.record.queuedSeconds = round((now - tracked.submittedAt) / 1000);
    return;
  }
  tracked.record.queuedSeconds = round(Math.max(0, started - tracked.submittedWall) / 1000);
  tracked.record.runningSeconds = round(Math.max(0, ended - started) / 1000);
}

/** sbatch reads %j, %x, ... in file names: a % of the work dir's own is written %%. */
function slurmFilename(file: string): string {
  return file.replace(/%/g, '%%');
}

async function readExitCode(file: string): Promise<number | undefined> {
  const text = await readFile(file, 'utf8').catch(() => undefined);
  if (text === undefined || !/^\d+\s*$/.test(text)) return undefined;
  return Number(text.trim());
}

/** The end of a job's output file: enough for the metrics line and an error message. */
async function readTail(file: string): Promise<string> {
  const handle = await open(file, 'r');
  try {
    const { size } = await handle.stat();
    if (size > MAX_STDOUT_BYTES) {
      throw new SlurmJobError(
        `${file}: the evaluation printed more than ${MAX_STDOUT_BYTES / 1024 / 1024} MB on stdout; it should print its metrics as the last line`,
      );
    }
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    return buffer.toString('utf8');
  } finally {
    await handle.close();
  }
}

async function removeFiles(files: readonly string[]): Promise<void> {
  await Promise.all(files.map((file) => rm(file, { force: true, recursive: true })));
}

function round(seconds: number): number {
  return Number(seconds.toFixed(3));
}
