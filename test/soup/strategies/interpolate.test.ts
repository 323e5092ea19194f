import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import { closeAll } from '../../../src/checkpoint/discover.js';
import type { EvaluationOptions } from '../../../src/eval/create.js';
import {
  interpolate,
  interpolatedWeights,
  interpolationPoints,
  isBarrier,
  largestDip,
  openInterpolationEnds,
  scoreInterpolation,
  verdictPossible,
} from '../../../src/soup/strategies/interpolate.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { writeFirstValueScorer } from '../../helpers/merge.js';

const dir = await tempDir();
const a = await SafetensorsFile.open(
  await writeSafetensorsFile(path.join(dir, 'a.safetensors'), {
    w: { dtype: 'F32', shape: [3], values: [0.1, -2, 3.3] },
    step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(new Int32Array([100]).buffer) },
  }),
);
const b = await SafetensorsFile.open(
  await writeSafetensorsFile(path.join(dir, 'b.safetensors'), {
    w: { dtype: 'F32', shape: [3], values: [0.7, 4, -1.1] },
    step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(new Int32Array([200]).buffer) },
  }),
);
after(() => Promise.all([a.close(), b.close()]));

/** ends/x.safetensors (w = [0.25, 0]), y (w = [0.75, 0]) and nan (w = [0.5, NaN]). */
async function writeEnds(): Promise<void> {
  for (const [name, first, second] of [
    ['x', 0.25, 0],
    ['y', 0.75, 0],
    ['nan', 0.5, NaN],
  ] as const) {
    await writeSafetensorsFile(path.join(dir, 'ends', `${name}.safetensors`), { w: { dtype: 'F32', shape: [2], values: [first, second] } });
  }
}

describe('interpolation', () => {
  it('spaces t evenly from 0 to 1, both ends included exactly', () => {
    assert.deepEqual(interpolationPoints(5), [0, 0.25, 0.5, 0.75, 1]);
    assert.equal(interpolationPoints(11).length, 11);
    assert.equal(interpolationPoints(3)[2], 1);
  });

  it('gives A and B themselves at the ends and (1 - t) A + t B between, integers from the nearer end', async () => {
    assert.deepEqual(await interpolatedWeights(a, b, 0).floats('w'), await a.readFloats('w'));
    assert.deepEqual(await interpolatedWeights(a, b, 1).floats('w'), await b.readFloats('w'));
    const quarter = await interpolatedWeights(a, b, 0.25).floats('w');
    const [x, y] = [await a.readFloats('w'), await b.readFloats('w')];
    assert.deepEqual(
      quarter,
      Float32Array.from(x, (value, i) => 0.75 * value + 0.25 * y[i]!),
    );
    assert.deepEqual(new Int32Array((await interpolatedWeights(a, b, 0.25).bytes('step')).slice().buffer), Int32Array.of(100));
    assert.deepEqual(new Int32Array((await interpolatedWeights(a, b, 0.75).bytes('step')).slice().buffer), Int32Array.of(200));
  });

  it("keeps a diverged end point out of the other end's own weights (0 * NaN is NaN), and marks the points it poisons", async () => {
    const nan = await SafetensorsFile.open(
      await writeSafetensorsFile(path.join(dir, 'nan.safetensors'), {
        w: { dtype: 'F32', shape: [3], values: [NaN, 1, Infinity] },
        step: { dtype: 'I32', shape: [1], bytes: new Uint8Array(4) },
      }),
    );
    try {
      assert.deepEqual(await interpolatedWeights(a, nan, 0).floats('w'), await a.readFloats('w'));
      assert.deepEqual(await interpolatedWeights(nan, a, 1).floats('w'), await a.readFloats('w'));
      const points = await scoreInterpolation(a, nan, 3, async (candidate) => (await candidate.floats('w'))[1]!, { diverged: { a: false, b: true } });
      assert.deepEqual(points, [
        { t: 0, score: -2 },
        { t: 0.5, score: -0.5, diverged: true },
        { t: 1, score: 1, diverged: true },
      ]);
      assert.equal(verdictPossible(points), false);
      assert.equal(verdictPossible(points.slice(0, 1)), true);
      assert.equal(verdictPossible([{ t: 0, score: NaN }]), false, 'a NaN score from a script gives no verdict either');
    } finally {
      await nan.close();
    }
  });

  it('scores each point in order of t', async () => {
    const points = await scoreInterpolation(a, b, 3, async (candidate) => (await candidate.floats('w'))[0]!);
    assert.deepEqual(
      points.map((p) => p.t),
      [0, 0.5, 1],
    );
    assert.deepEqual(
      points.map((p) => Number(p.score.toFixed(6))),
      [0.1, 0.4, 0.7],
    );
  });

  it('measures the largest fall below the line between the ends, and calls it a barrier only above noise', () => {
    const points = [
      { t: 0, score: 0.8 },
      { t: 0.5, score: 0.6 },
      { t: 1, score: 0.9 },
    ];
    const dip = largestDip(points, true);
    assert.equal(dip.t, 0.5);
    assert.ok(Math.abs(dip.dip - 0.25) < 1e-12);
    assert.equal(isBarrier(dip.dip, 'accuracy', points, 2000), true);
    assert.equal(isBarrier(0.004, 'accuracy', points, 2000), false, 'under half a point');
    assert.equal(isBarrier(0.006, 'accuracy', points, 100), false, 'under two samples of 100');
    const losses = [
      { t: 0, score: 0.5 },
      { t: 0.5, score: 0.45 },
      { t: 1, score: 0.4 },
    ];
    assert.ok(largestDip(losses, false).dip <= 0, 'a loss below the line is no dip');
    assert.equal(isBarrier(0.1, 'loss', losses), true);
  });

  it('scores the segment with the evaluator the options ask for, without the CLI, and reports a diverged end', async () => {
    const scorer = await writeFirstValueScorer(path.join(dir, 'score.mjs'));
    await writeEnds();
    const evaluation: EvaluationOptions = { evalCmd: `node '${scorer}' {ckpt}`, metric: 'accuracy', batchSize: 512, executor: 'local', retries: 2 };
    const [x, y] = await openInterpolationEnds(path.join(dir, 'ends', 'x.safetensors'), path.join(dir, 'ends', 'y.safetensors'), {}, false);
    const warnings: string[] = [];
    try {
      const made = await interpolate(x, y, evaluation, { steps: 3, allowNonFinite: false, warn: (message) => warnings.push(message) });
      assert.deepEqual(Object.keys(made.document), ['a', 'b', 'names', 'metric', 'direction', 'backend', 'points', 'dip', 'barrier', 'samples']);
      assert.deepEqual(made.document.names, ['x', 'y']);
      assert.deepEqual(made.document.points, [
        { t: 0, score: 0.25 },
        { t: 0.5, score: 0.5 },
        { t: 1, score: 0.75 },
      ]);
      assert.deepEqual(made.document.dip, { t: 0, dip: 0 });
      assert.equal(made.document.barrier, false);
      assert.equal(made.document.samples, null);
      assert.equal(made.data, undefined);
      assert.deepEqual(warnings, []);
    } finally {
      await closeAll([x, y]);
    }
    const [z, nan] = await openInterpolationEnds(path.join(dir, 'ends', 'x.safetensors'), path.join(dir, 'ends', 'nan.safetensors'), {}, false);
    try {
      const told: string[] = [];
      const made = await interpolate(z, nan, evaluation, { steps: 2, allowNonFinite: false, warn: (message) => told.push(message) });
      assert.equal(made.document.dip, null);
      assert.equal(made.document.barrier, null);
      assert.deepEqual(made.document.diverged, [{ name: 'nan', path: nan.path, tensor: 'w', element: 1, value: 'NaN' }]);
      assert.deepEqual(told, ['nan diverged: NaN in w (element 1); every point it weighs in holds non-finite weights, so no basin verdict is given']);
    } finally {
      await closeAll([z, nan]);
    }
  });

  it('opens the two ends one path each, and refuses a folder of several checkpoints or ends that do not fit', async () => {
    await writeEnds();
    await assert.rejects(openInterpolationEnds(path.join(dir, 'ends'), path.join(dir, 'ends', 'y.safetensors'), {}, false), {
      message: `${path.join(dir, 'ends')} holds 3 checkpoints; soup interpolate goes from one checkpoint to another`,
    });
    await assert.rejects(openInterpolationEnds(path.join(dir, 'ends', 'x.safetensors'), path.join(dir, 'a.safetensors'), {}, false), {
      message: /^size mismatch for w: \[2\] in .*ends\/x\.safetensors vs \[3\] in .*a\.safetensors/,
    });
  });
});
