import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { TensorInfo } from '../../../src/checkpoint/types.js';
import { InputError } from '../../../src/errors.js';
import type { ProgressEvent } from '../../../src/progress.js';
import { planOutput } from '../../../src/checkpoint/writer.js';
import { Mixer } from '../../../src/soup/kernel/mix.js';
import { collect, tempDir, writeSafetensorsFile, type RawTensor } from '../../helpers/files.js';

const dir = await tempDir();

/** The whole mean of one tensor, read back from the mixer's float64 stream. */
async function meanOf(mixer: Mixer, tensor: TensorInfo, coefficients: number[]): Promise<Float64Array> {
  const bytes = await collect(mixer.stream(tensor, coefficients, 'F64'));
  return new Float64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8);
}
let counter = 0;
const opened: SafetensorsFile[] = [];
after(() => Promise.all(opened.map((checkpoint) => checkpoint.close())));
async function open(tensors: Record<string, RawTensor>): Promise<SafetensorsFile> {
  const checkpoint = await SafetensorsFile.open(await writeSafetensorsFile(path.join(dir, `m${counter++}.safetensors`), tensors));
  opened.push(checkpoint);
  return checkpoint;
}
const weight = (values: number[]): Record<string, RawTensor> => ({ w: { dtype: 'F32', shape: [values.length], values } });

describe('Mixer', () => {
  it('computes the element-wise mean of three ingredients as by hand', async () => {
    const checkpoints = [await open(weight([1, 2, 3])), await open(weight([4, 5, 6])), await open(weight([7, 8, 10]))];
    const mean = await meanOf(new Mixer(checkpoints), checkpoints[0]!.tensors()[0]!, [1, 1, 1]);
    assert.deepEqual([...mean], [4, 5, 19 / 3]);
  });

  it('skips ingredients with a zero coefficient and weights the others', async () => {
    const checkpoints = [await open(weight([1, 1])), await open(weight([100, 100])), await open(weight([4, 7]))];
    const mixer = new Mixer(checkpoints);
    assert.deepEqual([...(await meanOf(mixer, checkpoints[0]!.tensors()[0]!, [1, 0, 1]))], [2.5, 4]);
    assert.deepEqual([...(await meanOf(mixer, checkpoints[0]!.tensors()[0]!, [3, 0, 1]))], [1.75, 2.5]);
  });

  it('mixes with coefficients per tensor and, unnormalised, writes the weighted sum itself', async () => {
    const two = (a: number[], b: number[]): Record<string, RawTensor> => ({
      a: { dtype: 'F32', shape: [2], values: a },
      b: { dtype: 'F32', shape: [2], values: b },
    });
    const checkpoints = [await open(two([1, 2], [10, 20])), await open(two([3, 4], [30, 40]))];
    const mixer = new Mixer(checkpoints);
    const produce = mixer.producer((name) => (name === 'a' ? [0.25, 0.25] : [0.5, 1.5]), { normalize: false });
    const [a, b] = planOutput(checkpoints[0]!);
    assert.deepEqual([...new Float32Array((await collect(produce(a!, 0))).slice().buffer)], [1, 1.5], 'a: 0.25 * (1 + 3), not their mean');
    assert.deepEqual([...new Float32Array((await collect(produce(b!, 1))).slice().buffer)], [50, 70]);
  });

  it('reports progress in bytes read, up to the total', async () => {
    const checkpoints = [await open(weight([1, 2])), await open(weight([3, 4]))];
    const events: ProgressEvent[] = [];
    const mixer = new Mixer(checkpoints, { onProgress: (event) => events.push(event) });
    const produce = mixer.producer([1, 1]);
    const bytes = await collect(produce(planOutput(checkpoints[0]!)[0]!, 0));
    assert.deepEqual([...new Float32Array(bytes.buffer)], [2, 3]);
    assert.deepEqual(events, [
      { kind: 'read', bytes: 8, total: 16 },
      { kind: 'read', bytes: 16, total: 16 },
    ]);
  });

  it('leaves tensors the writer will not ask for (tied to another) out of the progress total', async () => {
    const tensors = (values: number[]): Record<string, RawTensor> => ({ ...weight(values), v: { dtype: 'F32', shape: [2], values } });
    const checkpoints = [await open(tensors([1, 2])), await open(tensors([3, 4]))];
    const events: ProgressEvent[] = [];
    const plan = [...planOutput(checkpoints[0]!)];
    plan[1] = { ...plan[1]!, tiedTo: 'w' };
    const produce = new Mixer(checkpoints, { onProgress: (event) => events.push(event) }).producer([1, 1], { plan });
    await collect(produce(plan[0]!, 0));
    assert.deepEqual(events.at(-1), { kind: 'read', bytes: 16, total: 16 });
  });

  it('encodes the mean in the output dtype', async () => {
    const checkpoints = [await open(weight([1, 2])), await open(weight([2, 2]))];
    const bytes = await collect(new Mixer(checkpoints).producer([1, 1])({ name: 'w', shape: [2], dtype: 'BF16' }, 0));
    assert.deepEqual([...new Uint16Array(bytes.buffer)], [0x3fc0, 0x4000]);
  });

  it('copies integer tensors from the first ingredient and warns when the others differ', async () => {
    const step = (n: number): Record<string, RawTensor> => ({
      step: { dtype: 'I64', shape: [1], bytes: new Uint8Array(new BigInt64Array([BigInt(n)]).buffer) },
    });
    const checkpoints = [await open(step(5)), await open(step(5)), await open(step(9))];
    const warnings: string[] = [];
    const mixer = new Mixer(checkpoints, { onProgress: (e) => e.kind === 'warning' && warnings.push(e.message) });
    const bytes = await collect(mixer.producer([1, 1, 1])({ name: 'step', shape: [1], dtype: 'I64' }, 0));
    assert.deepEqual([...new BigInt64Array(bytes.buffer)], [5n]);
    assert.deepEqual(warnings, [
      `I64 tensor "step" differs between ingredients (${checkpoints[2]!.name} differ from ${checkpoints[0]!.name}); kept ${checkpoints[0]!.name}'s values`,
    ]);
  });

  it('refuses a NaN or infinite weight, naming the file, the tensor and the element', async () => {
    const bad = await open(weight([1, Infinity]));
    const checkpoints = [await open(weight([1, 2])), bad];
    await assert.rejects(meanOf(new Mixer(checkpoints), checkpoints[0]!.tensors()[0]!, [1, 1]), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.equal(error.message, `${bad.path}: tensor "w": holds Infinity at element 1; a soup of it would be Infinity too`);
      assert.match(error.hint ?? '', /--allow-nonfinite/);
      return true;
    });
  });

  it('keeps non-finite values when allowed', async () => {
    const checkpoints = [await open(weight([1, 2])), await open(weight([1, NaN]))];
    const mean = await meanOf(new Mixer(checkpoints, { allowNonFinite: true }), checkpoints[0]!.tensors()[0]!, [1, 1]);
    assert.equal(mean[0], 1);
    assert.ok(Number.isNaN(mean[1]));
  });

  it('stops between tensors when the signal is aborted', async () => {
    const checkpoints = [await open(weight([1])), await open(weight([2]))];
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(meanOf(new Mixer(checkpoints, { signal: controller.signal }), checkpoints[0]!.tensors()[0]!, [1, 1]), {
      name: 'InterruptedError',
    });
  });
});

describe('Mixer with half and double precision ingredients', () => {
  it('averages F16, BF16 and F64 tensors and writes each back in its own dtype', async () => {
    const { encodeFloats, decodeFloats } = await import('../../../src/checkpoint/dtype.js');
    const tensors = (a: number, b: number, c: number): Record<string, RawTensor> => ({
      h: { dtype: 'F16', shape: [1], bytes: encodeFloats([a], 'F16') },
      b: { dtype: 'BF16', shape: [1], bytes: encodeFloats([b], 'BF16') },
      d: { dtype: 'F64', shape: [1], bytes: encodeFloats([c], 'F64') },
    });
    const checkpoints = [await open(tensors(1, 2, 0.1)), await open(tensors(2, 4, 0.2))];
    const produce = new Mixer(checkpoints).producer([1, 1]);
    const out = planOutput(checkpoints[0]!);
    assert.deepEqual(
      out.map((t) => t.dtype),
      ['F16', 'BF16', 'F64'],
    );
    assert.deepEqual([...decodeFloats(await collect(produce(out[0]!, 0)), 'F16')], [1.5]);
    assert.deepEqual([...decodeFloats(await collect(produce(out[1]!, 1)), 'BF16')], [3]);
    assert.deepEqual([...decodeFloats(await collect(produce(out[2]!, 2)), 'F64')], [(0.1 + 0.2) / 2], 'F64 keeps double precision');
  });
});

describe('Mixer in chunks', () => {
  const big = 300_000;
  const values = (seed: number) => Array.from({ length: big }, (_, i) => Math.sin(seed * 1000 + i) * 10);

  it('writes the same bytes whatever the chunk size, chunk boundaries included', async () => {
    const { encodeFloats } = await import('../../../src/checkpoint/dtype.js');
    const checkpoints = [
      await open({ w: { dtype: 'F32', shape: [big], values: values(1) } }),
      await open({ w: { dtype: 'F32', shape: [big], values: values(2) } }),
      await open({ w: { dtype: 'F16', shape: [big], bytes: encodeFloats(values(3), 'F16') } }),
    ];
    for (const dtype of ['F32', 'BF16'] as const) {
      const output = { name: 'w', shape: [big], dtype };
      const whole = await collect(new Mixer(checkpoints, { chunkElements: big }).producer([1, 1, 1])(output, 0));
      const chunked = await collect(new Mixer(checkpoints, { chunkElements: 70_001 }).producer([1, 1, 1])(output, 0));
      assert.equal(whole.byteLength, big * (dtype === 'F32' ? 4 : 2));
      assert.deepEqual(chunked, whole, dtype);
    }
  });

  it('reads one tensor stored as F64, F32 and F16 by different ingredients, each into buffers of its own width', async () => {
    const { encodeFloats, decodeFloats } = await import('../../../src/checkpoint/dtype.js');
    const stored = [
      { dtype: 'F64' as const, bytes: encodeFloats(values(6), 'F64') },
      { dtype: 'F32' as const, bytes: encodeFloats(values(7), 'F32') },
      { dtype: 'F16' as const, bytes: encodeFloats(values(8), 'F16') },
    ];
    const checkpoints = await Promise.all(stored.map(({ dtype, bytes }) => open({ w: { dtype, shape: [big], bytes } })));
    const mixed = await collect(new Mixer(checkpoints, { chunkElements: 70_001 }).producer([1, 1, 1])({ name: 'w', shape: [big], dtype: 'F32' }, 0));
    const [a, b, c] = stored.map(({ dtype, bytes }) => decodeFloats(bytes, dtype));
    const expected = Float32Array.from({ length: big }, (_, i) => (a![i]! + b![i]! + c![i]!) / 3);
    assert.deepEqual(new Float32Array(mixed.buffer, mixed.byteOffset, big), expected);
  });

  it('finds a NaN in a later chunk and names its element', async () => {
    const withNaN = values(4);
    withNaN[big - 5] = NaN;
    const checkpoints = [
      await open({ w: { dtype: 'F32', shape: [big], values: values(5) } }),
      await open({ w: { dtype: 'F32', shape: [big], values: withNaN } }),
    ];
    const mixer = new Mixer(checkpoints, { chunkElements: 100_000 });
    await assert.rejects(
      collect(mixer.producer([1, 1])({ name: 'w', shape: [big], dtype: 'F32' }, 0)),
      new RegExp(`tensor "w": holds NaN at element ${big - 5}`),
    );
  });
});

describe('the WebAssembly SIMD kernel', () => {
  it('computes exactly the bits of the JS kernel, for 1 to 9 ingredients and odd lengths', async () => {
    const fc = (await import('fast-check')).default;
    let run = 0;
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 9000 }), fc.integer({ min: 0, max: 2 ** 31 }), async (count, length, seed) => {
        const checkpoints = [];
        for (let k = 0; k < count; k++) {
          const values = Array.from({ length }, (_, i) => Math.fround(Math.sin(seed + k * 7919 + i) * 10 ** ((i % 7) - 3)));
          checkpoints.push(await open({ w: { dtype: 'F32', shape: [length], values } }));
        }
        const output = { name: 'w', shape: [length], dtype: 'F32' as const };
        const ones = checkpoints.map(() => 1);
        const simd = await collect(new Mixer(checkpoints, { chunkElements: 5000 }).producer(ones)(output, run));
        const js = await collect(new Mixer(checkpoints, { chunkElements: 5000, simd: false }).producer(ones)(output, run++));
        assert.deepEqual(simd, js);
      }),
      { numRuns: 30 },
    );
  });

  it('reports a NaN it meets', async () => {
    const checkpoints = [
      await open({ w: { dtype: 'F32', shape: [4], values: [1, 2, 3, 4] } }),
      await open({ w: { dtype: 'F32', shape: [4], values: [1, 2, NaN, 4] } }),
    ];
    await assert.rejects(collect(new Mixer(checkpoints).producer([1, 1])({ name: 'w', shape: [4], dtype: 'F32' }, 0)), /holds NaN at element 2/);
  });
});
