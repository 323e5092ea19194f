import { readFileSync } from 'node:fs';
import { BLOCK } from './average.js';

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

type Exports = {
  add4(s: number, a: number, b: number, c: number, d: number, n: number, first: number): void;
  add2(s: number, a: number, b: number, n: number, first: number): void;
  add1(s: number, a: number, n: number, first: number): void;
  finish(s: number, out: number, n: number, divisor: number, exact: number): number;
  finish_bf16(s: number, out: number, n: number, divisor: number, exact: number): number;
  finish_f16(s: number, out: number, n: number, divisor: number, exact: number): number;
  widen_bf16(src: number, dst: number, n: number): void;
  widen_f16(src: number, dst: number, n: number): void;
};

/** The dtypes the kernel reads and writes. */
export type KernelDType = 'F32' | 'F16' | 'BF16';

/** One array in the kernel's memory: the byte address of element 0, and how its elements are stored. */
export interface KernelArray {
  address: number;
  dtype: KernelDType;
}

const SIZES: Record<KernelDType, number> = { F32: 4, F16: 2, BF16: 2 };

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
 * land in it, the kernel adds float32 inputs in float64 exactly as the JS kernel does (same order,
 * so the same bits), two elements per instruction, and writes float32 means into it.
 */
export class WasmKernel {
  readonly memory: WasmMemory;
  private readonly kernel: Exports;
  private readonly sums: number;
  /** Float32 blocks that half-precision inputs are widened into, one per input; grown on demand. */
  private readonly widened: number[] = [];
  private next: number;

  private constructor(module: WasmModule, bytes: number) {
    const pages = Math.ceil((bytes + BLOCK * 8 + 64 * 1024) / 65536);
    this.memory = new WebAssembly.Memory({ initial: pages, maximum: pages });
    this.kernel = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as Exports;
    this.sums = 0;
    this.next = BLOCK * 8;
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
   * out[0..count) = the mean of the inputs (sum / divisor) for an even count, block by block: half
   * inputs widened to float32 in cache, all added in float64 in the JS kernel's order, the mean
   * rounded to float32 and then, for a half output, to nearest even. Returns false if any mean is
   * NaN or infinite.
   */
  combine(inputs: readonly KernelArray[], divisor: number, out: KernelArray, count: number): boolean {
    const k = this.kernel;
    const at: number[] = [];
    // x / 2^k and x * 2^-k are the same correctly rounded number; other divisors need the division.
    const exact = Number.isInteger(divisor) && divisor > 0 && (divisor & (divisor - 1)) === 0 ? 1 : 0;
    let bad = 0;
    for (let base = 0; base < count; base += BLOCK) {
      const size = Math.min(BLOCK, count - base);
      for (const [j, input] of inputs.entries()) {
        if (input.dtype === 'F32') {
          at[j] = input.address + base * 4;
        } else {
          at[j] = this.widened[j] ??= this.allocate(BLOCK * 4).byteOffset;
          if (input.dtype === 'BF16') k.widen_bf16(input.address + base * 2, at[j]!, size);
          else k.widen_f16(input.address + base * 2, at[j]!, size);
        }
      }
      let i = 0;
      for (; i + 4 <= inputs.length; i += 4) k.add4(this.sums, at[i]!, at[i + 1]!, at[i + 2]!, at[i + 3]!, size, i === 0 ? 1 : 0);
      for (; i + 2 <= inputs.length; i += 2) k.add2(this.sums, at[i]!, at[i + 1]!, size, i === 0 ? 1 : 0);
      for (; i < inputs.length; i++) k.add1(this.sums, at[i]!, size, i === 0 ? 1 : 0);
      const to = out.address + base * SIZES[out.dtype];
      const finish = out.dtype === 'F32' ? k.finish : out.dtype === 'BF16' ? k.finish_bf16 : k.finish_f16;
      bad |= finish(this.sums, to, size, divisor, exact);
    }
    return bad === 0;
  }
}
