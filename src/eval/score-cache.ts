import { createHash } from 'node:crypto';
import { open, readFile, truncate, type FileHandle } from 'node:fs/promises';
import { checkpointHashes, hashFiles } from '../checkpoint/hash.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { InputError, OutputError, describeFsError } from '../errors.js';
import type { CandidateWeights, Evaluation, EvaluationContext, Evaluator, ScoreBound, ScoreMemory } from './evaluator.js';

/**
 * The score cache: a journal of every evaluation, one JSON line each, appended and flushed as each
 * score arrives. A run that stops (Ctrl-C, a lost cluster allocation) loses at most the evaluations
 * under way; the next run with the same journal takes every score it finds there and scores only
 * what is new.
 *
 * Entries are keyed by the evaluator (what scores: the command template, or the model and data, with
 * the metric and backend) and by the candidate's recipe (the method and each ingredient's SHA-256
 * with its weight). No candidate file is hashed: a candidate is known by what went into it.
 */
export interface JournalEntry {
  evaluator: string;
  candidate: string;
  /** The candidate for a person reading the journal, e.g. "checkpoint-1000 (+2 in soup)". */
  label: string;
  metrics: Record<string, number>;
  n?: number;
  scored?: number;
  /** Scoring stopped early against `bound`: the entry answers only the same question again. */
  pruned?: boolean;
  bound?: ScoreBound;
  seconds: number;
}

export function sha256Text(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The evaluator's key: a hash of what decides its scores, given as a JSON-able object. */
export function evaluatorKey(about: Record<string, unknown>): string {
  return sha256Text(JSON.stringify(about));
}

/** One SHA-256 for an ingredient: its file's, or for a multi-file checkpoint the hash of its files' list. */
export function ingredientKey(checkpoint: Checkpoint, hashes: ReadonlyMap<string, string>): string {
  const files = checkpointHashes(checkpoint, hashes);
  const names = Object.keys(files).sort();
  if (names.length === 1) return files[names[0]!]!;
  return sha256Text(names.map((name) => `${files[name]}  ${name}\n`).join(''));
}

/** A candidate's key: the method and each ingredient's SHA-256 with its weight, in hash order. */
export function candidateKey(method: string, parts: readonly { sha256: string; weight: number }[]): string {
  const sorted = [...parts].sort((a, b) => (a.sha256 < b.sha256 ? -1 : a.sha256 > b.sha256 ? 1 : a.weight - b.weight));
  return sha256Text(JSON.stringify({ method, ingredients: sorted }));
}

export class ScoreJournal {
  private readonly entries = new Map<string, JournalEntry[]>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly file: string,
    private readonly handle: FileHandle,
    loaded: JournalEntry[],
  ) {
    for (const entry of loaded) this.remember(entry);
  }

  /** Entries read from the file when it was opened. */
  get size(): number {
    return [...this.entries.values()].reduce((sum, list) => sum + list.length, 0);
  }

  /**
   * Reads the journal (creating it if missing). A torn last line, left by a crash in the middle of a
   * write, is cut off with a warning; any other line that is not an entry is an error.
   */
  static async open(file: string): Promise<{ journal: ScoreJournal; warnings: string[] }> {
    const text = await readFile(file, 'utf8').catch((error: unknown) => {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new InputError(file, `cannot read the score cache: ${describeFsError(error)}`, { cause: error });
    });
    const warnings: string[] = [];
    const loaded: JournalEntry[] = [];
    const lines = text.split('\n');
    let kept = 0;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      const last = i === lines.length - 1;
      if (line.trim() === '') {
        if (!last) kept += line.length + 1;
        continue;
      }
      const entry = parseEntry(line);
      if (entry === undefined) {
        if (last) {
          warnings.push(`${file}: the last line is incomplete (a run stopped while writing it); it is ignored and that candidate is scored again`);
          break;
        }
        throw new InputError(file, `line ${i + 1} is not a score cache entry`, { hint: 'remove that line, or start a new cache file' });
      }
      loaded.push(entry);
      kept += line.length + (last ? 0 : 1);
    }
    const keptBytes = Buffer.byteLength(text.slice(0, kept));
    // Cut a torn tail (and end a complete last line) so that new entries start on a line of their own.
    if (keptBytes < Buffer.byteLength(text)) await truncate(file, keptBytes).catch((error: unknown) => fail(file, error));
    const handle = await open(file, 'a').catch((error: unknown) => fail(file, error));
    if (keptBytes > 0 && !text.slice(0, kept).endsWith('\n')) await handle.write('\n');
    return { journal: new ScoreJournal(file, handle, loaded), warnings };
  }

  /** A score already in the journal: any full score of the candidate, or a stopped-early one against the same bound. */
  lookup(evaluator: string, candidate: string, bound?: ScoreBound): JournalEntry | undefined {
    const found = this.entries.get(`${evaluator} ${candidate}`) ?? [];
    return found.find((entry) => !entry.pruned) ?? found.find((entry) => sameBound(entry.bound, bound));
  }

  /** Appends one entry and flushes it to disk before resolving; entries never interleave. */
  append(entry: JournalEntry): Promise<void> {
    this.remember(entry);
    const line = `${JSON.stringify(entry)}\n`;
    this.writing = this.writing.then(async () => {
      try {
        await this.handle.write(line);
        await this.handle.datasync();
      } catch (error) {
        fail(this.file, error);
      }
    });
    return this.writing;
  }

  async close(): Promise<void> {
    await this.writing.catch(() => {});
    await this.handle.close();
  }

  private remember(entry: JournalEntry): void {
    const key = `${entry.evaluator} ${entry.candidate}`;
    this.entries.set(key, [...(this.entries.get(key) ?? []), entry]);
  }
}

function fail(file: string, error: unknown): never {
  throw new OutputError(file, `cannot write the score cache: ${describeFsError(error)}`, { cause: error });
}

function sameBound(a: ScoreBound | undefined, b: ScoreBound | undefined): boolean {
  return a !== undefined && b !== undefined && a.metric === b.metric && a.best === b.best && a.acceptTies === b.acceptTies;
}

function parseEntry(line: string): JournalEntry | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const entry = value as Partial<JournalEntry>;
  const valid =
    typeof entry.evaluator === 'string' &&
    typeof entry.candidate === 'string' &&
    typeof entry.metrics === 'object' &&
    entry.metrics !== null &&
    Object.values(entry.metrics).every((metric) => typeof metric === 'number' || metric === null);
  if (!valid) return undefined;
  // JSON writes a NaN score (a diverged run's loss) as null: it is read back as the NaN it was.
  const metrics = Object.fromEntries(Object.entries(entry.metrics!).map(([name, metric]) => [name, metric ?? NaN]));
  return { ...(entry as JournalEntry), metrics };
}

/**
 * An evaluator that answers from the journal what it has scored before, and journals every new
 * score. Candidates without a recipe (`parts`) go straight to the evaluator.
 */
export class JournaledEvaluator implements Evaluator, ScoreMemory {
  /** Evaluations answered from the journal in this run. */
  hits = 0;
  readonly concurrent: boolean;
  readonly parallelism: number | undefined;

  constructor(
    private readonly inner: Evaluator,
    private readonly journal: ScoreJournal,
    private readonly key: string,
    private readonly ingredientKeys: ReadonlyMap<Checkpoint, string>,
  ) {
    this.concurrent = inner.concurrent ?? false;
    this.parallelism = inner.parallelism;
  }

  get description(): string {
    return this.inner.description;
  }

  get metrics(): readonly string[] {
    return this.inner.metrics;
  }

  /** The journal's answer for a candidate, counted as a hit, or undefined. */
  recall(candidate: CandidateWeights, bound?: ScoreBound): Evaluation | undefined {
    const key = this.candidateKeyOf(candidate);
    const entry = key === undefined ? undefined : this.journal.lookup(this.key, key, bound);
    if (entry === undefined) return undefined;
    this.hits++;
    return {
      metrics: entry.metrics,
      ...(entry.n === undefined ? {} : { n: entry.n }),
      ...(entry.scored === undefined ? {} : { scored: entry.scored }),
      ...(entry.pruned === true ? { pruned: true } : {}),
    };
  }

  /** Journals a score measured elsewhere (on a worker thread). */
  async record(candidate: CandidateWeights, label: string, evaluation: Evaluation, seconds: number, bound?: ScoreBound): Promise<void> {
    const key = this.candidateKeyOf(candidate);
    if (key === undefined) return;
    const entry: JournalEntry = { evaluator: this.key, candidate: key, label, metrics: evaluation.metrics, seconds: Number(seconds.toFixed(3)) };
    if (evaluation.n !== undefined) entry.n = evaluation.n;
    if (evaluation.scored !== undefined) entry.scored = evaluation.scored;
    if (evaluation.pruned === true && bound !== undefined) Object.assign(entry, { pruned: true, bound });
    await this.journal.append(entry);
  }

  async evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: ScoreBound, context: EvaluationContext = {}): Promise<Evaluation> {
    const known = this.recall(candidate, bound);
    if (known !== undefined) return known;
    const started = performance.now();
    const key = this.candidateKeyOf(candidate);
    const evaluation = await this.inner.evaluate(candidate, signal, bound, { ...context, ...(key === undefined ? {} : { key: `${this.key}:${key}` }) });
    const label = (candidate.parts ?? []).map((part) => part.checkpoint.name).join(' + ');
    await this.record(candidate, label, evaluation, (performance.now() - started) / 1000, bound);
    return evaluation;
  }

  async dispose(): Promise<void> {
    try {
      await this.inner.dispose();
    } finally {
      await this.journal.close();
    }
  }

  private candidateKeyOf(candidate: CandidateWeights): string | undefined {
    if (candidate.parts === undefined) return undefined;
    const parts = candidate.parts.map((part) => ({ sha256: this.ingredientKeys.get(part.checkpoint), weight: part.weight }));
    if (parts.some((part) => part.sha256 === undefined)) return undefined;
    return candidateKey('mean', parts as { sha256: string; weight: number }[]);
  }
}

export interface OpenedJournal {
  /** The evaluator that answers ingredients (and, through `journal`, candidates) already scored. */
  evaluator: JournaledEvaluator;
  journal: ScoreJournal;
  /** The evaluator's key: what decides its scores. */
  key: string;
  /** Each checkpoint's SHA-256, the journal keys of what candidates are made of. */
  hashes: Map<Checkpoint, string>;
  /** Lines of the file that could not be read (a run killed mid-write) and were dropped. */
  warnings: string[];
}

/** Opens --score-cache around an evaluator, keyed by each ingredient's SHA-256 (from the hash cache when unchanged). */
export async function openScoreJournal(
  evaluator: Evaluator,
  identity: Record<string, unknown>,
  file: string,
  checkpoints: readonly Checkpoint[],
  signal: AbortSignal,
): Promise<OpenedJournal> {
  const fileHashes = await hashFiles(
    checkpoints.flatMap((checkpoint) => checkpoint.files),
    signal,
  );
  const { journal, warnings } = await ScoreJournal.open(file);
  const hashes = new Map(checkpoints.map((checkpoint) => [checkpoint, ingredientKey(checkpoint, fileHashes)]));
  const key = evaluatorKey(identity);
  return { evaluator: new JournaledEvaluator(evaluator, journal, key, hashes), journal, key, hashes, warnings };
}
