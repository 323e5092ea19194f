/**
 * Library code never prints: it reports what it is doing through these events, and the CLI decides
 * whether that becomes a progress bar, a warning line, or nothing (--json, --quiet).
 */
export type ProgressEvent =
  /** Weight bytes read so far out of the total this job will read. */
  | { kind: 'read'; bytes: number; total: number }
  /**
   * Candidates scored so far out of the total the job will score; `candidate` is being scored.
   * `running` evaluations are under way (several with --jobs), `secondsEach` is the mean time of one.
   */
  | { kind: 'score'; done: number; total: number; candidate: string; running?: number; secondsEach?: number }
  /** Images decoded into the data cache so far out of the folder's total (the first pass over an image folder). */
  | { kind: 'decode'; done: number; total: number }
  /** Cluster jobs (--executor slurm): ids queued and running now, jobs ended so far, and re-submissions. */
  | { kind: 'jobs'; queued: string[]; running: string[]; done: number; retried: number }
  /** Something the user should know that does not stop the job. */
  | { kind: 'warning'; message: string };

export type ProgressListener = (event: ProgressEvent) => void;

export const ignoreProgress: ProgressListener = () => {};
