/**
 * The averaging kernel alone, in cache and without I/O: nanoseconds per output element of a mean of
 * four inputs, per dtype (the same dtype in and out). What a soup's arithmetic costs at any size.
 */
import { WasmKernel, type KernelDType } from '../src/soup/kernel/wasm.js';

interface Row {
  name: string;
  value: string;
}

const INPUTS = 4;
const ELEMENTS = 1 << 18;

/** A plausible weight's bits: sign, exponent around 2^-4, random mantissa. */
function weightBits(dtype: KernelDType, random: () => number): number {
  const sign = random() < 0.5 ? 0x8000 : 0;
  if (dtype === 'BF16') return sign | ((0x3d + Math.floor(random() * 3)) << 7) | Math.floor(random() * 0x80);
  return sign | ((0x0b + Math.floor(random() * 3)) << 10) | Math.floor(random() * 0x400);
}

export function benchKernel(runs: number, rows: Row[], results: Record<string, unknown>): void {
  const measured: Record<string, number[]> = {};
  let seed = 1;
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0;
    return seed / 2 ** 32;
  };
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const size = dtype === 'F32' ? 4 : 2;
    const kernel = WasmKernel.create(INPUTS * ELEMENTS * size + ELEMENTS * size + 4096);
    if (kernel === undefined) throw new Error('WebAssembly SIMD is not available');
    const inputs = Array.from({ length: INPUTS }, () => {
      const bytes = kernel.allocate(ELEMENTS * size);
      if (dtype === 'F32') {
        const floats = new Float32Array(bytes.buffer, bytes.byteOffset, ELEMENTS);
        for (let i = 0; i < ELEMENTS; i++) floats[i] = (random() - 0.5) * 0.2;
      } else {
        const halves = new Uint16Array(bytes.buffer, bytes.byteOffset, ELEMENTS);
        for (let i = 0; i < ELEMENTS; i++) halves[i] = weightBits(dtype, random);
      }
      return { address: bytes.byteOffset, dtype };
    });
    const out = { address: kernel.allocate(ELEMENTS * size).byteOffset, dtype };
    const repeats = 40;
    const times: number[] = [];
    for (let run = 0; run < runs + 1; run++) {
      const started = process.hrtime.bigint();
      for (let r = 0; r < repeats; r++) kernel.combine(inputs, INPUTS, out, ELEMENTS);
      // The first run compiles and warms up.
      if (run > 0) times.push(Number(process.hrtime.bigint() - started) / (repeats * ELEMENTS));
    }
    times.sort((a, b) => a - b);
    const ns = times[times.length >> 1]!;
    measured[dtype] = times;
    rows.push({
      name: `kernel, mean of ${INPUTS} ${dtype.toLowerCase()} inputs in cache`,
      value: `${ns.toFixed(2)} ns per output element (${((INPUTS * size) / ns).toFixed(1)} GB/s of input)`,
    });
  }
  results.kernel = { inputs: INPUTS, elements: ELEMENTS, nanosecondsPerElement: measured };
}
