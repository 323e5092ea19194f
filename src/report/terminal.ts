import { Chalk, type ChalkInstance } from 'chalk';
import type cliProgressTypes from 'cli-progress';
import { createRequire } from 'node:module';
import type { ProgressEvent, ProgressListener } from '../progress.js';
import { formatBytes, formatSeconds } from './format.js';

/** Evaluations slower than this are logged one line each when stderr shows no bar. */
const SLOW_EVALUATION_SECONDS = 5;

/** "3 / 15 done, 2 running, 10 left, 42.0 s each": where a batch of evaluations stands. */
export function evaluationStatus(event: Extract<ProgressEvent, { kind: 'score' }>): string {
  if (event.running === undefined) return `${event.done} / ${event.total}`;
  const left = event.total - event.done - event.running;
  const each = event.secondsEach === undefined ? '' : `, ${formatSeconds(event.secondsEach)} each`;
  return `${event.done} / ${event.total} done, ${event.running} running, ${left} left${each}`;
}

/** "Slurm jobs: 2 queued (101, 102), 1 running (100), 3 done": where cluster jobs stand, with their ids. */
export function jobsStatus(event: Extract<ProgressEvent, { kind: 'jobs' }>): string {
  const ids = (list: string[]): string => (list.length === 0 ? '' : ` (${list.slice(0, 6).join(', ')}${list.length > 6 ? ', ...' : ''})`);
  const retried = event.retried === 0 ? '' : `, ${event.retried} re-submitted`;
  return `Slurm jobs: ${event.queued.length} queued${ids(event.queued)}, ${event.running.length} running${ids(event.running)}, ${event.done} done${retried}`;
}

/** cli-progress is loaded only when a bar is drawn: runs in pipelines and CI never pay for it. */
const loadProgress = (): typeof cliProgressTypes => createRequire(import.meta.url)('cli-progress') as typeof cliProgressTypes;

export interface OutputMode {
  json?: boolean;
  quiet?: boolean;
  /** false with --no-color. */
  color?: boolean;
}

/**
 * The one place that decides what reaches the terminal: results on stdout (or one JSON document with
 * --json), progress and warnings on stderr, colour only where wanted (--no-color, NO_COLOR, a TTY).
 */
export class Terminal {
  readonly paint: ChalkInstance;
  readonly json: boolean;
  readonly quiet: boolean;
  private bar: cliProgressTypes.SingleBar | undefined;
  private barKind: ProgressEvent['kind'] | undefined;
  private barStarted = performance.now();
  readonly warnings: string[] = [];

  constructor(mode: OutputMode, env: NodeJS.ProcessEnv = process.env) {
    this.json = mode.json ?? false;
    this.quiet = mode.quiet ?? false;
    const noColor = mode.color === false || (env.NO_COLOR !== undefined && env.NO_COLOR !== '');
    const level = noColor ? 0 : process.stdout.isTTY || env.FORCE_COLOR !== undefined ? new Chalk().level : 0;
    this.paint = new Chalk({ level });
  }

  /** A line of human-readable result; suppressed with --json, where stdout holds only the document. */
  print(line = ''): void {
    if (!this.json) process.stdout.write(`${line}\n`);
  }

  printJson(document: unknown): void {
    process.stdout.write(`${JSON.stringify(document, null, 2)}\n`);
  }

  /** A note about progress on stderr; --quiet and --json silence it. */
  info(line: string): void {
    if (!this.quiet && !this.json) this.writeStderr(`${line}\n`);
  }

  warn(message: string): void {
    this.warnings.push(message);
    if (!this.quiet) this.writeStderr(`${this.paint.yellow('soup: warning:')} ${message}\n`);
  }

  /** Progress events become a bar on an interactive stderr (bytes read, or candidates scored); warnings become warning lines. */
  progress(): ProgressListener {
    const interactive = process.stderr.isTTY && !this.quiet && !this.json;
    let logged = -1;
    let jobs = '';
    return (event: ProgressEvent) => {
      if (event.kind === 'warning') {
        this.warn(event.message);
        return;
      }
      if (event.kind === 'jobs') {
        // Cluster jobs take minutes to hours: a batch log gets a line each time one is queued, starts or ends.
        if (!interactive) this.info(`soup: ${jobsStatus(event)}`);
        jobs = `  ${jobsStatus(event)}`;
        return;
      }
      if (!interactive) {
        // Slow evaluations (a cluster job each) get a log line per result, for batch logs without a bar.
        if (event.kind === 'score' && event.done !== logged && (event.secondsEach ?? 0) >= SLOW_EVALUATION_SECONDS) {
          logged = event.done;
          this.info(`soup: scored ${evaluationStatus(event)}`);
        }
        return;
      }
      const [value, payload] =
        event.kind === 'read'
          ? [event.bytes, { label: 'reading', detail: `${formatBytes(event.bytes)} / ${formatBytes(event.total)}` }]
          : event.kind === 'decode'
            ? [event.done, { label: 'decoding', detail: `${event.done} / ${event.total} images  ${this.rate(event.done)}` }]
            : [event.done, { label: 'scoring', detail: `${evaluationStatus(event)}  ${event.candidate}${jobs}` }];
      if (this.bar === undefined || this.barKind !== event.kind) {
        this.endProgress();
        this.barKind = event.kind;
        const cliProgress = loadProgress();
        this.bar = new cliProgress.SingleBar(
          { format: '{label} {bar} {percentage}% | {detail}', stream: process.stderr, hideCursor: true, clearOnComplete: true, barsize: 30 },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(event.total, value, payload);
      }
      this.bar.update(value, payload);
    };
  }

  /** Items per second since the current bar started, e.g. "270 images/s". */
  private rate(done: number): string {
    if (this.bar === undefined || this.barKind !== 'decode') this.barStarted = performance.now();
    const seconds = (performance.now() - this.barStarted) / 1000;
    return seconds > 0.2 ? `${Math.round(done / seconds)} images/s` : '';
  }

  endProgress(): void {
    this.bar?.stop();
    this.bar = undefined;
  }

  private writeStderr(text: string): void {
    if (this.bar !== undefined) this.endProgress();
    process.stderr.write(text);
  }
}
