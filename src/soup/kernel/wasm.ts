import { readFileSync } from 'node:fs';
import { CONTROL_BYTES, JOB, JOB_WORDS, KernelHelper, runPieces, type KernelExports } from './helper.js';
import { DTYPE_CODES, ENDS_GROUP, ENTRY_BYTES, FIRST_GROUP, STARTS_GROUP } from './source.js';

/** The little of the WebAssembly API used here (Node's types for version 20 leave it out). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number; shared?: boolean }) => WasmMemory;
};
interface WasmModule {
  readonly kind?: 'module';
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

/** The dtypes the kernel reads and writes. */
export type KernelDType = 'F32' | 'F16' | 'BF16';

/** One array in the kernel's memory: the byte address of element 0, and how its elements are stored. */
export interface KernelArray {
  address: number;
  dtype: KernelDType;
}

const CODES: Record<KernelDType, number> = DTYPE_CODES;

/** Elements the kernel computes per step: counts passed to combine() are multiples of it. */
export const KERNEL_STEP = 8;

const compiled = new Map<boolean, WasmModule | null>();

/**
 * The compiled kernel, over a shared memory or not; null where WebAssembly SIMD (or shared memory) is
 * not available, and then the JS kernel (or one thread) runs.
 */
function kernelModule(shared: boolean): WasmModule | null {
  if (!compiled.has(shared)) {
    try {
      compiled.set(shared, new WebAssembly.Module(readFileSync(new URL(shared ? './kernel-shared.wasm' : './kernel.wasm', import.meta.url))));
    } catch {
      compiled.set(shared, null);
    }
  }
  return compiled.get(shared)!;
}

/** Chunks of at least this many elements are shared with the helper thread, when there is one. */
const SHARE_MIN = 1 << 16;

/**
 * The averaging kernel in WebAssembly SIMD, over one memory that also holds the chunk buffers: reads
 * land in it, the kernel adds the inputs in float64 exactly as the JS kernel does (same order, so the
 * same bits), and writes the means into it.
 *
 * With `threads`, the memory is shared and a helper thread takes pieces of every chunk of SHARE_MIN
 * elements or more (helper.ts): the arithmetic of a half-precision soup costs more than
 * reading and writing it, and the machine's other cores would otherwise only write.
 */
export class WasmKernel {
  readonly memory: WasmMemory;
  private readonly kernel: KernelExports;
  /** The input table, one entry per input; grown on demand. */
  private table: { address: number; entries: number } = { address: 0, entries: 0 };
  private next: number;
  private readonly job = new Int32Array(JOB_WORDS);
  /** The helper thread: undefined until a chunk needs it, null if there is none. */
  private helper: KernelHelper | undefined | null;
  /** A job is started and not finished: the table and job words are in use. */
  private started = false;

  private constructor(
    private readonly module: WasmModule,
    bytes: number,
    threads: boolean,
  ) {
    const pages = Math.ceil((bytes + CONTROL_BYTES + 64 * 1024) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages, ...(threads ? { shared: true } : {}) });
    this.kernel = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as KernelExports;
    this.next = 16;
    if (!threads) this.helper = null;
  }

  /**
   * A kernel with `bytes` of buffer space, or undefined where WebAssembly SIMD is not available. With
   * `threads`, large chunks are shared with a helper thread (see the class comment).
   */
  static create(bytes: number, { threads = false }: { threads?: boolean } = {}): WasmKernel | undefined {
    const shared = threads ? kernelModule(true) : null;
    if (shared !== null) return new WasmKernel(shared, bytes, true);
    const module = kernelModule(false);
    return module === null ? undefined : new WasmKernel(module, bytes, false);
  }

  /** A region of the kernel's memory, 16-byte aligned; allocated once, never freed. */
  allocate(bytes: number): Uint8Array {
    const at = this.next;
    this.next = Math.ceil((at + bytes) / 16) * 16;
    if (this.next > this.memory.buffer.byteLength) throw new Error('internal: wasm kernel memory is too small');
    return new Uint8Array(this.memory.buffer, at, bytes);
  }

  /**
   * out[0..count) = the mean of the inputs (sum / divisor), for a count that is a multiple of
   * KERNEL_STEP: every input widened to float64 and added in the JS kernel's order (groups of four,
   * then two, then one, as sumBlock adds them), the mean rounded to float32 and then, for a half
   * output, to nearest even. Returns false if any mean is NaN or infinite.
   */
  combine(inputs: readonly KernelArray[], divisor: number, out: KernelArray, count: number): boolean {
    return this.start(inputs, divisor, out, count)();
  }

  /**
   * combine() in two steps, so the caller can work meanwhile: the helper thread (if any) starts on
   * the chunk now, and the returned function finishes it on this thread and returns combine()'s
   * answer. Nothing else may use the kernel until it is called, nor touch the inputs or the output.
   */
  start(inputs: readonly KernelArray[], divisor: number, out: KernelArray, count: number): () => boolean {
    if (count % KERNEL_STEP !== 0) throw new RangeError(`internal: the kernel computes multiples of ${KERNEL_STEP} elements, not ${count}`);
    if (this.started) throw new Error('internal: a kernel job started before the last one finished');
    const job = this.job;
    const n = inputs.length;
    const dtype = inputs[0]!.dtype;
    const same = inputs.every((input) => input.dtype === dtype);
    job[JOB.function] = same ? CODES[dtype] : -1;
    job[JOB.table] = this.tableFor(inputs);
    [job[JOB.a], job[JOB.b], job[JOB.c]] = same ? [n >> 2, (n >> 1) & 1, n & 1] : [n, 0, 0];
    job[JOB.out] = out.address;
    job[JOB.outDtype] = CODES[out.dtype];
    // x / 2^k and x * 2^-k are the same correctly rounded number; other divisors need the division.
    job[JOB.exact] = Number.isInteger(divisor) && divisor > 0 && (divisor & (divisor - 1)) === 0 ? 1 : 0;
    job[JOB.count] = count;
    const helper = count >= SHARE_MIN ? this.startHelper() : null;
    helper?.post(job, divisor);
    this.started = true;
    return () => {
      this.started = false;
      if (helper !== null) return helper.join(this.kernel) === 0;
      let piece = 0;
      return runPieces(this.kernel, job, divisor, () => piece++) === 0;
    };
  }

  /** Whether the kernel can share chunks with a helper thread (its memory is shared). */
  get sharesWork(): boolean {
    return this.helper !== null;
  }

  /** Threads computing: 2 once the helper thread has started. */
  get threads(): number {
    return this.helper ? 2 : 1;
  }

  /** Stops the helper thread, if one started. */
  close(): void {
    this.helper?.close();
    this.helper = null;
  }

  private startHelper(): KernelHelper | null {
    if (this.helper === undefined) this.helper = KernelHelper.start(this.module, this.memory, this.allocate(CONTROL_BYTES).byteOffset) ?? null;
    return this.helper;
  }

  /** The input table: each input's address and dtype, and where the groups of sumBlock begin and end. */
  private tableFor(inputs: readonly KernelArray[]): number {
    if (this.table.entries < inputs.length) this.table = { address: this.allocate(inputs.length * ENTRY_BYTES).byteOffset, entries: inputs.length };
    const words = new Int32Array(this.memory.buffer, this.table.address, (inputs.length * ENTRY_BYTES) / 4);
    let k = 0;
    for (const size of [4, 2, 1]) {
      for (; k + size <= inputs.length; k += size) {
        for (let j = k; j < k + size; j++) {
          words[j * 3] = inputs[j]!.address;
          words[j * 3 + 1] = CODES[inputs[j]!.dtype];
          words[j * 3 + 2] = (j === k ? STARTS_GROUP : 0) | (j === k + size - 1 ? ENDS_GROUP : 0) | (k === 0 ? FIRST_GROUP : 0);
        }
      }
    }
    return this.table.address;
  }
}
