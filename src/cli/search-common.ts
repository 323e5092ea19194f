/** What the search commands (learned without gradients, evolve) share: the journal, the objective, the recorded command. */
import { totalmem } from 'node:os';
import type { Checkpoint } from '../checkpoint/types.js';
import { UsageError } from '../errors.js';
import type { Evaluator } from '../eval/evaluator.js';
import { metricDirection, type Direction } from '../eval/metrics.js';
import { formatBytes } from '../report/format.js';
import type { Terminal } from '../report/terminal.js';
import { learnedMemoryBytes } from '../soup/strategies/learned.js';
import { openScoreJournal, type OpenedJournal } from '../eval/score-cache.js';
import type { EvaluationSetup } from '../eval/create.js';
import { commandArguments } from './options.js';

/** Opens --score-cache: the evaluator answers ingredients from it, and the search looks its candidates up there. */
export async function openSearchJournal(
  setup: EvaluationSetup,
  file: string,
  checkpoints: readonly Checkpoint[],
  terminal: Terminal,
  signal: AbortSignal,
): Promise<OpenedJournal> {
  const opened = await openScoreJournal(setup.evaluator, await setup.identity(), file, checkpoints, signal);
  for (const warning of opened.warnings) terminal.warn(warning);
  return opened;
}

/**
 * What the search ranks candidates by: --objective, else the loss where the evaluator measures one
 * (smooth where accuracy moves in steps of one sample), else --metric.
 */
/** The objective's direction: the metric's own (with --maximize/--minimize) when it is the metric, else what its name says. */
export function objectiveDirection(objective: string, metric: string, direction: Direction): Direction {
  return objective === metric ? direction : metricDirection(objective);
}

export function searchObjective(evaluator: Evaluator, options: { objective?: string | undefined; metric: string }): string {
  if (options.objective !== undefined) {
    if (!evaluator.metrics.includes(options.objective) && !evaluator.description.startsWith('command:')) {
      throw new UsageError(`--objective: ${evaluator.description} measures ${evaluator.metrics.join(', ')}, not "${options.objective}"`);
    }
    return options.objective;
  }
  return evaluator.metrics.includes('loss') ? 'loss' : options.metric;
}

/** Flags that change how fast a search runs or what else is written, never what it finds: left out of the recipe's command. */
const SPEED_FLAGS = new Set(['--jobs', '--score-cache', '--plot', '--config-out']);

/** The recorded command without --jobs, --score-cache, --plot and --config-out, so a resumed or parallel run writes the same bytes. */
export function searchCommandArguments(): string[] {
  const argv = commandArguments();
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (SPEED_FLAGS.has(arg)) {
      i++;
      continue;
    }
    if ([...SPEED_FLAGS].some((flag) => arg.startsWith(`${flag}=`))) continue;
    kept.push(arg);
  }
  return kept;
}

/**
 * Candidates scored at once: --jobs with an evaluator that takes several (--eval-cmd); ONNX Runtime
 * and TF.js score one at a time on all their threads, which --jobs does not change.
 */
export function searchJobs(evaluator: Evaluator, jobs: number | undefined, terminal: Terminal): number {
  if (evaluator.concurrent === true) return jobs ?? 1;
  if (jobs !== undefined && jobs > 1) terminal.warn(`--jobs ${jobs} is for --eval-cmd; ${evaluator.description} scores one candidate at a time`);
  return 1;
}

/**
 * The learned soup, with or without gradients, holds every ingredient it mixes in memory: refused up
 * front when that is more than --max-memory (default: half the machine's memory).
 */
export function refuseOverMemory(mixed: readonly Checkpoint[], maxMemoryOption: number | undefined, inputs: readonly string[]): number {
  const maxMemory = maxMemoryOption ?? Math.floor(totalmem() / 2);
  const memory = learnedMemoryBytes(mixed);
  if (memory > maxMemory) {
    throw new UsageError(
      `the learned soup holds every ingredient's weights in memory: ${mixed.length} ingredients need ${formatBytes(memory)}, more than --max-memory ${formatBytes(maxMemory)}`,
      { hint: `raise --max-memory, use fewer ingredients, or make a greedy soup, which streams them: soup greedy ${inputs.join(' ')} --val DATA -o OUT` },
    );
  }
  return memory;
}
