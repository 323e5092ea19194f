/** The --json document of `soup greedy`, the contract CI scripts read. */
import type { Direction } from '../../eval/metrics.js';
import type { SlurmJobRecord } from '../../eval/slurm.js';
import type { Divergence } from '../diverged.js';
import type { GreedyStep } from './greedy.js';

/** The --json document of `soup greedy` (a contract with CI scripts: fields may be added, never removed). */
export interface GreedyDocument {
  strategy: 'greedy';
  /** With --method: the merge method every candidate is made with, and its base model. */
  method?: string;
  base?: string;
  metric: string;
  /** Which way the metric points: the ranking and every decision follow it. */
  direction: Direction;
  backend: string;
  jobs: number;
  /** score is NaN (null in JSON) when it is not a number; diverged: where the weights first hold NaN or an infinity. */
  ingredients: { name: string; path: string; score: number; diverged?: Divergence }[];
  steps: GreedyStep[];
  chosen: string[];
  /** Diverged ingredients, left out without a candidate holding them being built. */
  leftOut: string[];
  score: number;
  output: string;
  evaluations: number;
  /** Evaluations answered by the --score-cache journal instead of being run. */
  evaluationsFromCache: number;
  /** Evaluations scored ahead in idle slots (--jobs with --eval-cmd) that no decision needed. */
  evaluationsWasted?: number;
  /** --executor slurm: every job submitted, with the time it spent queued and running. */
  slurmJobs?: SlurmJobRecord[];
  samples: number | null;
  samplesScored: number;
  samplesSaved: number;
  seconds: number;
  warnings: string[];
}

/** What the greedy soup knows before it is written: the document less what writing and the terminal add. */
export type GreedyMade = Omit<GreedyDocument, 'output' | 'seconds' | 'warnings'>;
