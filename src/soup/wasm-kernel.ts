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
  finish(s: number, out: number, n: number, divisor: number): number;
};

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

  /** Whether these arrays live in the kernel's memory (float32 inputs read into its buffers). */
  owns(values: Float32Array | Float64Array): values is Float32Array {
    return values instanceof Float32Array && values.buffer === this.memory.buffer;
  }

  /**
   * out[0..count) = float32(sum of inputs / divisor) for an even count; returns false if any mean is
   * NaN or infinite.
   */
  combine(inputs: readonly Float32Array[], divisor: number, out: Float32Array, count: number): boolean {
    const k = this.kernel;
    let bad = 0;
    for (let base = 0; base < count; base += BLOCK) {
      const size = Math.min(BLOCK, count - base);
      const at = (values: Float32Array): number => values.byteOffset + base * 4;
      let i = 0;
      for (; i + 4 <= inputs.length; i += 4) k.add4(this.sums, at(inputs[i]!), at(inputs[i + 1]!), at(inputs[i + 2]!), at(inputs[i + 3]!), size, i === 0 ? 1 : 0);
      for (; i + 2 <= inputs.length; i += 2) k.add2(this.sums, at(inputs[i]!), at(inputs[i + 1]!), size, i === 0 ? 1 : 0);
      for (; i < inputs.length; i++) k.add1(this.sums, at(inputs[i]!), size, i === 0 ? 1 : 0);
      bad |= k.finish(this.sums, out.byteOffset + base * 4, size, divisor);
    }
    return bad === 0;
  }
}
