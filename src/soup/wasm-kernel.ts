import { readFileSync } from 'node:fs';
import { DTYPE_CODES, ENDS_GROUP, ENTRY_BYTES, FIRST_GROUP, STARTS_GROUP } from './kernel-source.js';

/** The little of the WebAssembly API used here (Node's types for version 20 leave it out). */
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (module: WasmModule, imports: object) => { exports: unknown };
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
};
interface WasmModule {
  readonly kind?: 'module';
}
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}

type SameDtypeMean = (table: number, quads: number, pairs: number, singles: number, out: number, outDtype: number, n: number, divisor: number, exact: number) => number;
type Exports = {
  mean(table: number, entries: number, out: number, outDtype: number, n: number, divisor: number, exact: number): number;
  mean_f32: SameDtypeMean;
  mean_bf16: SameDtypeMean;
  mean_f16: SameDtypeMean;
};

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

let compiled: WasmModule | null | undefined;

/** The compiled kernel, or null where WebAssembly SIMD is not available (then the JS kernel runs). */
function kernelModule(): WasmModule | null {
  if (compiled === undefined) {
    try {
      compiled = new WebAssembly.Module(readFileSync(new URL('./kernel.wasm', import.meta.url)));
    } catch {
      compiled = null;
    }
  }
  return compiled;
}

/**
 * The averaging kernel in WebAssembly SIMD, over one memory that also holds the chunk buffers: reads
 * land in it, the kernel adds the inputs in float64 exactly as the JS kernel does (same order, so the
 * same bits), and writes the means into it.
 */
export class WasmKernel {
  readonly memory: WasmMemory;
  private readonly kernel: Exports;
  /** The input table, one entry per input; grown on demand. */
  private table: { address: number; entries: number } = { address: 0, entries: 0 };
  private next: number;

  private constructor(module: WasmModule, bytes: number) {
    const pages = Math.ceil((bytes + 64 * 1024) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.kernel = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports;
    this.next = 16;
  }

  /** A kernel with `bytes` of buffer space, or undefined where WebAssembly SIMD is not available. */
  static create(bytes: number): WasmKernel | undefined {
    const module = kernelModule();
    return module === null ? undefined : new WasmKernel(module, bytes);
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
    if (count % KERNEL_STEP !== 0) throw new RangeError(`internal: the kernel computes multiples of ${KERNEL_STEP} elements, not ${count}`);
    // x / 2^k and x * 2^-k are the same correctly rounded number; other divisors need the division.
    const exact = Number.isInteger(divisor) && divisor > 0 && (divisor & (divisor - 1)) === 0 ? 1 : 0;
    const table = this.tableFor(inputs);
    const k = this.kernel;
    const n = inputs.length;
    const dtype = inputs[0]!.dtype;
    const output = [out.address, CODES[out.dtype], count, divisor, exact] as const;
    const bad = inputs.every((input) => input.dtype === dtype)
      ? { F32: k.mean_f32, BF16: k.mean_bf16, F16: k.mean_f16 }[dtype](table, n >> 2, (n >> 1) & 1, n & 1, ...output)
      : k.mean(table, n, ...output);
    return bad === 0;
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
