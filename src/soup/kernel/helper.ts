/**
 * How the averaging kernel works through a chunk: in pieces. With a helper thread (worker.ts)
 * on a shared memory, both threads take pieces from a shared counter until none is left, so whichever
 * has the time does the arithmetic (the helper shares its core with the writes, the mixer's thread
 * also reads). The mixer posts a chunk and reads the next one while the helper starts on it, then
 * joins in. They meet through Atomics on a control block, once per chunk; a helper that has not woken
 * by the time the pieces are gone is not waited for.
 */
import { Worker } from 'node:worker_threads';
import { DTYPE_CODES } from './source.js';

/** The kernel's exported functions (source.ts). */
type SameDtypeMean = (
  table: number,
  quads: number,
  pairs: number,
  singles: number,
  out: number,
  outDtype: number,
  from: number,
  n: number,
  divisor: number,
  exact: number,
) => number;
export type KernelExports = {
  mean(table: number, entries: number, out: number, outDtype: number, from: number, n: number, divisor: number, exact: number): number;
  mean_f32: SameDtypeMean;
  mean_bf16: SameDtypeMean;
  mean_f16: SameDtypeMean;
};

/**
 * One chunk's work as integers, so it can be posted through shared memory: which function (-1 for
 * mixed dtypes, else the inputs' dtype code), its integer arguments (table; entries, or quads, pairs
 * and singles; out; outDtype), whether the divisor is a power of two, the elements of the chunk, and
 * the range [from, to) a call computes.
 */
export const JOB = { function: 0, table: 1, a: 2, b: 3, c: 4, out: 5, outDtype: 6, exact: 7, count: 8, from: 9, to: 10 } as const;
export const JOB_WORDS = 11;

/** A piece's elements: about a sixteenth of a chunk, at least PIECE_MIN, a multiple of 8. */
const PIECES_PER_CHUNK = 16;
const PIECE_MIN = 8192;

/** Runs the kernel over the job's [from, to); returns non-zero if any mean is NaN or infinite. */
function compute(kernel: KernelExports, job: ArrayLike<number>, divisor: number): number {
  const output = [job[JOB.out]!, job[JOB.outDtype]!, job[JOB.from]!, job[JOB.to]!, divisor, job[JOB.exact]!] as const;
  const groups = [job[JOB.table]!, job[JOB.a]!, job[JOB.b]!, job[JOB.c]!] as const;
  switch (job[JOB.function]) {
    case -1:
      return kernel.mean(job[JOB.table]!, job[JOB.a]!, ...output);
    case DTYPE_CODES.F32:
      return kernel.mean_f32(...groups, ...output);
    case DTYPE_CODES.BF16:
      return kernel.mean_bf16(...groups, ...output);
    default:
      return kernel.mean_f16(...groups, ...output);
  }
}

function pieceSize(count: number): number {
  return Math.max(PIECE_MIN, Math.ceil(count / PIECES_PER_CHUNK / 8) * 8);
}

/** Takes pieces (numbers from `next`) until none is left; returns non-zero if any mean is NaN or infinite. */
export function runPieces(kernel: KernelExports, job: Int32Array, divisor: number, next: () => number): number {
  const count = job[JOB.count]!;
  const piece = pieceSize(count);
  const pieces = Math.ceil(count / piece);
  let bad = 0;
  for (let p = next(); p < pieces; p = next()) {
    job[JOB.from] = p * piece;
    job[JOB.to] = Math.min(count, (p + 1) * piece);
    bad |= compute(kernel, job, divisor);
  }
  return bad;
}

/** The control block, as int32 indices, and where the divisor (float64) sits in it. */
const STATE = 0;
const NEXT = 1;
const DONE = 2;
const RESULT = 3;
const JOB_AT = 4;
const DIVISOR_BYTE = 72;
export const CONTROL_BYTES = 80;

const IDLE = 0;
const POSTED = 1;
const EXIT = 2;
/** RESULT of a helper that failed. */
const FAILED = -1;

/** How long to wait for the helper before calling it stuck; a piece takes well under a second. */
const HELPER_TIMEOUT_MS = 60_000;
interface ControlBlock {
  words: Int32Array;
  divisor: Float64Array;
}

function controlBlock(buffer: ArrayBufferLike, address: number): ControlBlock {
  return { words: new Int32Array(buffer, address, CONTROL_BYTES / 4), divisor: new Float64Array(buffer, address + DIVISOR_BYTE, 1) };
}

/** The posted job's pieces, taken from the shared counter. */
function sharedPieces(kernel: KernelExports, { words, divisor }: ControlBlock): number {
  return runPieces(kernel, words.slice(JOB_AT, JOB_AT + JOB_WORDS), divisor[0]!, () => Atomics.add(words, NEXT, 1));
}

/** The mixer's side: starts the helper thread and shares chunks with it. */
export class KernelHelper {
  private readonly control: ControlBlock;

  private constructor(
    private readonly worker: Worker,
    buffer: ArrayBufferLike,
    address: number,
  ) {
    this.control = controlBlock(buffer, address);
  }

  /**
   * A helper computing on `memory` (shared) with the same compiled kernel, its control block at
   * `address`; undefined if the thread cannot start.
   */
  static start(module: unknown, memory: { buffer: ArrayBufferLike }, address: number): KernelHelper | undefined {
    try {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: { module, memory, address } });
      // The helper never keeps the process alive; an error in it fails the chunk it was computing.
      worker.unref();
      worker.on('error', () => {});
      return new KernelHelper(worker, memory.buffer, address);
    } catch {
      return undefined;
    }
  }

  /**
   * Posts the job: the helper starts on its pieces as soon as it wakes, while this thread does other
   * work (reads the next chunk). join() must follow before the next post.
   */
  post(job: Int32Array, divisor: number): void {
    const { words } = this.control;
    words.set(job, JOB_AT);
    this.control.divisor[0] = divisor;
    words[NEXT] = 0;
    words[DONE] = 0;
    Atomics.store(words, STATE, POSTED);
    Atomics.notify(words, STATE);
  }

  /** Takes the posted job's remaining pieces on this thread and waits for the helper's; as runPieces. */
  join(kernel: KernelExports): number {
    const { words } = this.control;
    let bad: number;
    try {
      bad = sharedPieces(kernel, this.control);
    } finally {
      // Still posted: the helper never took the job. Otherwise it is working on a piece: wait for it.
      if (Atomics.compareExchange(words, STATE, POSTED, IDLE) !== POSTED) this.awaitHelper();
    }
    if (Atomics.load(words, DONE) === 0) return bad;
    if (words[RESULT] === FAILED) throw new Error('internal: the kernel helper thread failed');
    return bad | words[RESULT]!;
  }

  close(): void {
    Atomics.store(this.control.words, STATE, EXIT);
    Atomics.notify(this.control.words, STATE);
    void this.worker.terminate();
  }

  private awaitHelper(): void {
    const { words } = this.control;
    const deadline = performance.now() + HELPER_TIMEOUT_MS;
    while (Atomics.load(words, DONE) === 0) {
      if (performance.now() > deadline) throw new Error('internal: the kernel helper thread stopped answering');
      Atomics.wait(words, DONE, 0, 1000);
    }
  }
}

/** The helper thread's side (worker.ts): takes posted chunks until told to exit. */
export function serveHelper(kernel: KernelExports, buffer: ArrayBufferLike, address: number): void {
  const control = controlBlock(buffer, address);
  const { words } = control;
  for (;;) {
    const state = Atomics.load(words, STATE);
    if (state === EXIT) return;
    if (state === IDLE) {
      Atomics.wait(words, STATE, IDLE);
      continue;
    }
    // The mixer may have finished every piece and withdrawn the job meanwhile.
    if (Atomics.compareExchange(words, STATE, POSTED, IDLE) !== POSTED) continue;
    let result: number;
    try {
      result = sharedPieces(kernel, control);
    } catch {
      result = FAILED;
    }
    words[RESULT] = result;
    Atomics.store(words, DONE, 1);
    Atomics.notify(words, DONE);
  }
}
