import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { FLOAT_DTYPES, decodeFloats, encodeFloats, type FloatDType } from '../../../src/checkpoint/dtype.js';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor } from '../../../src/checkpoint/types.js';
import { Mixer, type MixOptions } from '../../../src/soup/kernel/mix.js';
import { WasmKernel, type KernelDType } from '../../../src/soup/kernel/wasm.js';
import { collect, tempDir, writeSafetensorsFile } from '../../helpers/files.js';

const dir = await tempDir();
const opened: SafetensorsFile[] = [];
after(() => Promise.all(opened.map((checkpoint) => checkpoint.close())));

/** xorshift32: random bits from a seed fast-check chose, so failures replay. */
function bitsFrom(seed: number): () => number {
  let state = seed | 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return state >>> 0;
  };
}

/** Bit patterns worth meeting often: zeros, infinities, NaNs (quiet, signalling, negative), subnormals, extremes. */
const SPECIAL: Record<FloatDType, number[]> = {
  F64: [],
  F32: [
    0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0x00000001, 0x807fffff, 0x7f7fffff, 0x33800000, 0x38800000, 0x477fefff,
    0x477ff000,
  ],
  F16: [0, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x0001, 0x83ff, 0x7bff, 0x0400],
  BF16: [0, 0x8000, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x7f81, 0x0001, 0x807f, 0x7f7f],
};

/** `length` elements of `dtype` as stored bytes: mostly random bit patterns, one in eight a special one. */
function randomStored(dtype: FloatDType, length: number, next: () => number): Uint8Array {
  const words = new Uint32Array(dtype === 'F64' ? length * 2 : Math.ceil((length * (dtype === 'F32' ? 4 : 2)) / 4));
  for (let i = 0; i < words.length; i++) words[i] = next();
  const bytes = new Uint8Array(words.buffer, 0, length * (dtype === 'F64' ? 8 : dtype === 'F32' ? 4 : 2));
  const specials = SPECIAL[dtype];
  if (specials.length > 0) {
    const view = dtype === 'F32' ? new Uint32Array(words.buffer) : new Uint16Array(words.buffer);
    for (let i = 0; i < length; i++) if (next() % 8 === 0) view[i] = specials[next() % specials.length]!;
  }
  return bytes.slice();
}

let counter = 0;
async function open(dtype: FloatDType, bytes: Uint8Array, length: number): Promise<SafetensorsFile> {
  const file = await writeSafetensorsFile(path.join(dir, `k${counter++}.safetensors`), { w: { dtype, shape: [length], bytes } });
  const checkpoint = await SafetensorsFile.open(file);
  opened.push(checkpoint);
  return checkpoint;
}

/** `count` ingredients of `length` random elements, ingredient k stored as dtypes[k]. */
async function openRandom(count: number, length: number, dtypes: readonly FloatDType[], seed: number): Promise<SafetensorsFile[]> {
  const next = bitsFrom(seed);
  const checkpoints = [];
  for (let k = 0; k < count; k++) checkpoints.push(await open(dtypes[k]!, randomStored(dtypes[k]!, length, next), length));
  return checkpoints;
}

/** The equal-weight mean of the tensor `output` names, as the writer receives it from a mixer with these options. */
async function meanOf(checkpoints: readonly Checkpoint[], output: OutputTensor, options: MixOptions): Promise<Buffer> {
  const mixer = new Mixer(checkpoints, options);
  try {
    return Buffer.from(await collect(mixer.producer(checkpoints.map(() => 1))(output, 0)));
  } finally {
    mixer.close();
  }
}

describe('the WebAssembly SIMD kernel on every float dtype', () => {
  it('computes exactly the bits of the JS kernel for random bit patterns (NaN, infinities, subnormals), odd lengths and 1 to 9 ingredients', async () => {
    const fc = (await import('fast-check')).default;
    const dtype = fc.constantFrom(...FLOAT_DTYPES);
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 1, max: 9001 }),
        fc.array(dtype, { minLength: 9, maxLength: 9 }),
        fc.boolean(),
        dtype,
        fc.constantFrom(4096, 5001),
        fc.integer({ min: 1, max: 2 ** 31 }),
        async (count, length, dtypes, same, outDtype, chunkElements, seed) => {
          const checkpoints = await openRandom(count, length, same ? dtypes.fill(dtypes[0]!) : dtypes, seed);
          const output = { name: 'w', shape: [length], dtype: outDtype };
          const options = { chunkElements, allowNonFinite: true };
          assert.deepEqual(await meanOf(checkpoints, output, options), await meanOf(checkpoints, output, { ...options, simd: false }));
        },
      ),
      { numRuns: 60 },
    );
  });

  it("sums half inputs in float32 where that is exact and gets the JS kernel's bits: exponents at and past the limits of that rule, 1 to 9 ingredients, every divisor", async () => {
    const fc = (await import('fast-check')).default;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9 }),
        fc.constantFrom<'BF16' | 'F16'>('BF16', 'F16'),
        fc.constantFrom<FloatDType>('F32', 'F32', 'F32', 'BF16', 'F16'),
        fc.integer({ min: 0, max: 1000 }),
        fc.constantFrom(-2, 0, 0, 1, 1, 1),
        fc.integer({ min: 8, max: 3000 }),
        fc.integer({ min: 1, max: 2 ** 31 }),
        async (count, dtype, outDtype, where, pastLimit, length, seed) => {
          // The widest spread of exponents the kernel sums in float32, and around it.
          const spread = Math.max(0, (dtype === 'BF16' ? 16 : 13) - Math.ceil(Math.log2(count)) + pastLimit);
          // Exponent fields mostly at the top of [base, base + spread], some at its bottom, a few between:
          // sums that carry into one more bit are those float32 may not hold. The largest finite
          // exponent field is 254 (bfloat16) or 30 (half).
          const largest = dtype === 'BF16' ? 254 : 30;
          const base = Math.max(0, Math.round((where / 1000) * largest) - spread);
          const next = bitsFrom(seed);
          const checkpoints: SafetensorsFile[] = [];
          for (let k = 0; k < count; k++) {
            const halves = new Uint16Array(length);
            for (let i = 0; i < length; i++) {
              const bits = next();
              const pick = bits % 8;
              const exponent = Math.min(largest, base + (pick < 5 ? spread : pick < 7 ? 0 : (bits >>> 3) % (spread + 1)));
              // Half the mantissas near their largest, so that sums reach the next power of two.
              const largestMantissa = dtype === 'BF16' ? 0x7f : 0x3ff;
              const mantissa = (bits >>> 16) % 2 ? largestMantissa - ((bits >>> 8) & 3) : (bits >>> 8) & largestMantissa;
              // Mostly one sign: sums that cancel never reach the next power of two.
              const value = (bits >>> 28 === 0 ? 0x8000 : 0) | (dtype === 'BF16' ? (exponent << 7) | mantissa : (exponent << 10) | mantissa);
              halves[i] = (bits >>> 20) % 64 === 0 ? value & 0x8000 : value;
            }
            checkpoints.push(await open(dtype, new Uint8Array(halves.buffer), length));
          }
          const output = { name: 'w', shape: [length], dtype: outDtype };
          const options = { chunkElements: 1024, allowNonFinite: true };
          assert.deepEqual(await meanOf(checkpoints, output, options), await meanOf(checkpoints, output, { ...options, simd: false }));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('divides in float64 when float32 cannot hold the divisor, even where it sums in float32', () => {
    const count = 4096;
    const next = bitsFrom(5);
    const kernel = WasmKernel.create(4 * count * 2 + count * 4 + 4096)!;
    const inputs = [0, 1, 2].map(() => {
      const region = kernel.allocate(count * 2);
      const halves = new Uint16Array(region.buffer, region.byteOffset, count);
      for (let i = 0; i < count; i++) halves[i] = (0x3f << 7) | (next() & 0x7f);
      return { bytes: region, array: { address: region.byteOffset, dtype: 'BF16' as const } };
    });
    const out = kernel.allocate(count * 4);
    const divisor = 3.3;
    kernel.combine(
      inputs.map(({ array }) => array),
      divisor,
      { address: out.byteOffset, dtype: 'F32' },
      count,
    );
    const values = inputs.map(({ bytes }) => decodeFloats(bytes, 'BF16'));
    const expected = Float32Array.from({ length: count }, (_, i) => (values[0]![i]! + values[1]![i]! + values[2]![i]!) / divisor);
    assert.deepEqual(new Float32Array(out.buffer, out.byteOffset, count), expected);
  });

  it('with a helper thread sharing each chunk, computes exactly the bits of the JS kernel (chunks large enough to share)', async () => {
    const fc = (await import('fast-check')).default;
    const dtype = fc.constantFrom<FloatDType>('F32', 'F16', 'BF16');
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 9 }),
        fc.integer({ min: 70_000, max: 300_001 }),
        fc.array(dtype, { minLength: 9, maxLength: 9 }),
        fc.boolean(),
        fc.constantFrom<FloatDType>(...FLOAT_DTYPES),
        fc.integer({ min: 1, max: 2 ** 31 }),
        async (count, length, dtypes, same, outDtype, seed) => {
          const checkpoints = await openRandom(count, length, same ? dtypes.fill(dtypes[0]!) : dtypes, seed);
          const output = { name: 'w', shape: [length], dtype: outDtype };
          const options = { chunkElements: 1 << 17, allowNonFinite: true };
          assert.deepEqual(
            await meanOf(checkpoints, output, { ...options, threads: 'always' }),
            await meanOf(checkpoints, output, { ...options, simd: false }),
          );
        },
      ),
      { numRuns: 12 },
    );
  });

  it('with a helper thread, keeps each chunk intact until the one after next is requested, as the writer needs', async () => {
    const length = 9 * (1 << 16) + 5;
    const checkpoints = await openRandom(4, length, ['BF16', 'BF16', 'BF16', 'BF16'], 7);
    const output = { name: 'w', shape: [length], dtype: 'BF16' as const };
    const options = { chunkElements: 1 << 16, allowNonFinite: true };
    const expected = await meanOf(checkpoints, output, { ...options, simd: false });
    const threaded = new Mixer(checkpoints, { ...options, threads: 'always' });
    try {
      // A first soup starts the helper thread; the second finds it awake.
      assert.deepEqual(Buffer.from(await collect(threaded.producer([1, 1, 1, 1])(output, 0))), expected);
      await sleep(100);
      // Hold each chunk as the writer does (its write in flight) while the next one is produced, and
      // give the helper time to compute ahead into whatever buffer it was handed.
      const held: { view: Uint8Array; copy: Uint8Array }[] = [];
      for await (const chunk of threaded.producer([1, 1, 1, 1])(output, 0)) {
        await sleep(10);
        for (const { view, copy } of held.slice(-1))
          assert.deepEqual(Buffer.from(view), Buffer.from(copy), 'a chunk changed before the one after next was requested');
        held.push({ view: chunk, copy: chunk.slice() });
      }
      assert.ok(held.length >= 9);
      assert.deepEqual(Buffer.concat(held.map(({ copy }) => copy)), expected);
    } finally {
      threaded.close();
    }
  });

  it('with a helper thread, finishes the chunk it posted ahead when the writer stops asking, so the next soup can start', async () => {
    const length = 4 * (1 << 16);
    const checkpoints = await openRandom(3, length, ['F16', 'F16', 'F16'], 11);
    const output = { name: 'w', shape: [length], dtype: 'F16' as const };
    const options = { chunkElements: 1 << 16, allowNonFinite: true };
    const threaded = new Mixer(checkpoints, { ...options, threads: 'always' });
    try {
      for await (const chunk of threaded.producer([1, 1, 1])(output, 0)) {
        assert.ok(chunk.byteLength > 0);
        break;
      }
      const again = await collect(threaded.producer([1, 1, 1])(output, 0));
      assert.deepEqual(Buffer.from(again), await meanOf(checkpoints, output, { ...options, simd: false }));
    } finally {
      threaded.close();
    }
  });

  it('starts its helper thread for large chunks and gets the bits of one thread', () => {
    const count = 1 << 18;
    const next = bitsFrom(99);
    const stored = [0, 1, 2, 3, 4].map(() => randomStored('BF16', count, next));
    const mean = (threads: boolean): { bytes: Buffer; threads: number } => {
      const kernel = WasmKernel.create(6 * count * 2 + 4096, { threads })!;
      try {
        const inputs = stored.map((bytes) => {
          const region = kernel.allocate(bytes.byteLength);
          region.set(bytes);
          return { address: region.byteOffset, dtype: 'BF16' as const };
        });
        const out = kernel.allocate(count * 2);
        kernel.combine(inputs, 5, { address: out.byteOffset, dtype: 'BF16' }, count);
        return { bytes: Buffer.from(out), threads: kernel.threads };
      } finally {
        kernel.close();
      }
    };
    const [one, two] = [mean(false), mean(true)];
    assert.equal(one.threads, 1);
    assert.equal(two.threads, 2);
    assert.deepEqual(two.bytes, one.bytes);
  });

  /** Every NaN mean is stored as this, in both kernels. */
  const CANONICAL_NAN = { F32: 0x7fc00000, F16: 0x7e00, BF16: 0x7fc0 };

  /** Runs one input through the kernel with divisor 1: its values widened, then written in `outDtype`. */
  function roundTrip(bytes: Uint8Array, inDtype: KernelDType, outDtype: KernelDType, count: number): Uint8Array {
    const kernel = WasmKernel.create(count * 8 + 1024)!;
    const input = kernel.allocate(bytes.byteLength);
    input.set(bytes);
    const out = kernel.allocate(count * 4);
    assert.equal(kernel.combine([{ address: input.byteOffset, dtype: inDtype }], 1, { address: out.byteOffset, dtype: outDtype }, count), false);
    return out.slice(0, count * (outDtype === 'F32' ? 4 : 2));
  }

  it('widens every one of the 65536 half and bfloat16 bit patterns as the JS decoder does', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const bytes = new Uint8Array(all.buffer);
    for (const dtype of ['F16', 'BF16'] as const) {
      const widened = roundTrip(bytes, dtype, 'F32', 65536);
      const expected = new Uint32Array(decodeFloats(bytes, dtype).buffer).map((x) => ((x & 0x7fffffff) > 0x7f800000 ? CANONICAL_NAN.F32 : x));
      assert.deepEqual(Buffer.from(widened), Buffer.from(expected.buffer), dtype);
    }
  });

  it('rounds float32 to half and bfloat16 to nearest even as the JS encoder does, ties and overflow included', () => {
    const next = bitsFrom(12345);
    const count = 1 << 18;
    const values = new Uint32Array(count);
    for (let i = 0; i < count; i++) {
      // Every fourth value sits on a rounding boundary of both formats: the low bits exactly half an ulp.
      values[i] = i % 4 === 0 ? (next() & 0xffffe000) | (i % 8 === 0 ? 0x1000 : 0x8000) : next();
    }
    values.set(SPECIAL.F32);
    const floats = new Float32Array(values.buffer);
    for (const dtype of ['F16', 'BF16'] as const) {
      const simd = roundTrip(new Uint8Array(values.buffer), 'F32', dtype, count);
      const expected = new Uint16Array(encodeFloats(floats, dtype).buffer).map((x, i) => (Number.isNaN(floats[i]) ? CANONICAL_NAN[dtype] : x));
      assert.deepEqual(Buffer.from(simd), Buffer.from(expected.buffer), dtype);
    }
  });
});

describe('NaN means', () => {
  it("are stored as the output dtype's positive quiet NaN, whichever NaN the ingredients held", async () => {
    const negativeNaN = new Uint8Array(new Uint32Array([0xffc00001, 0x7f800001, 0xff800000]).buffer);
    const positiveInfinity = new Uint8Array(new Uint32Array([0x3f800000, 0x7f800000, 0x7f800000]).buffer);
    const checkpoints = [await open('F32', negativeNaN, 3), await open('F32', positiveInfinity, 3)];
    const expected: Record<FloatDType, string> = { F64: '000000000000f87f', F32: '0000c07f', F16: '007e', BF16: 'c07f' };
    for (const dtype of FLOAT_DTYPES) {
      for (const simd of [true, false]) {
        const bytes = await collect(new Mixer(checkpoints, { allowNonFinite: true, simd }).producer([1, 1])({ name: 'w', shape: [3], dtype }, 0));
        const hex = Buffer.from(bytes).toString('hex');
        assert.equal(hex, expected[dtype].repeat(3), `${dtype}, simd ${simd}`);
      }
    }
  });
});
