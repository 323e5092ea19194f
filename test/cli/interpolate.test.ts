import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { XMLValidator } from 'fast-xml-parser';
import { runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';
import { writeFirstValueScorer } from '../helpers/merge.js';
import { linearSpec, writeModel } from '../helpers/onnx.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const a = path.join(fixtures, 'ingredients', 'lr1e-4-s1');
const b = path.join(fixtures, 'ingredients', 'lr3e-2-s8');
const val = path.join(fixtures, 'data', 'val');

async function evalJson(checkpoint: string): Promise<{ metrics: Record<string, number> }> {
  const result = await runSoup(['eval', checkpoint, '--val', val, '--json', '--backend', 'wasm']);
  assert.equal(result.code, 0, result.stderr);
  return JSON.parse(result.stdout);
}

describe('soup interpolate', () => {
  it('scores the end points as soup eval scores the two checkpoints, and draws the curve as SVG', async () => {
    const plot = path.join(dir, 'basin.svg');
    const result = await runSoup(['interpolate', a, b, '--val', val, '--steps', '3', '--plot', plot, '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.a, a);
    assert.equal(doc.b, b);
    assert.equal(doc.metric, 'accuracy');
    assert.equal(doc.backend, 'wasm');
    assert.equal(doc.plot, plot);
    assert.deepEqual(
      doc.points.map((p: { t: number }) => p.t),
      [0, 0.5, 1],
    );
    assert.equal(doc.points[0].score, (await evalJson(a)).metrics.accuracy);
    assert.equal(doc.points[2].score, (await evalJson(b)).metrics.accuracy);
    assert.equal(doc.barrier, true, 'the too aggressive run lies in another basin');
    assert.equal(doc.dip.t, 0.5);
    const svg = await readFile(plot, 'utf8');
    assert.equal(XMLValidator.validate(svg), true);
    assert.equal(svg.match(/<circle class="point"/g)?.length, 3);
  });

  it('prints a table with the end points named, and says whether there is a barrier', async () => {
    const result = await runSoup(['interpolate', a, path.join(fixtures, 'ingredients', 'lr3e-4-s2'), '--val', val, '--steps', '3']);
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.split('\n');
    assert.match(
      lines[0]!,
      /^Interpolation from lr1e-4-s1 \(t = 0\) to lr3e-4-s2 \(t = 1\), accuracy \(higher is better\) on val \(2000 samples\), tfjs \((wasm|node|cpu)\)$/,
    );
    assert.deepEqual(lines.slice(2, 6), ['     t  accuracy', '  0.00    0.8420  lr1e-4-s1', '  0.50    0.8425', '  1.00    0.8395  lr3e-4-s2']);
    assert.match(result.stdout, /^Largest fall below the straight line between the end points: 0\.0000\.$/m);
    assert.match(result.stdout, /^No barrier: the runs look like one basin, and should soup well\.$/m);
  });

  it('scores with --eval-cmd, on checkpoints of any format', async () => {
    const first = await writeSafetensorsFile(path.join(dir, 'x.safetensors'), { w: { dtype: 'F32', shape: [1], values: [0.25] } });
    const second = await writeSafetensorsFile(path.join(dir, 'y.safetensors'), { w: { dtype: 'F32', shape: [1], values: [0.75] } });
    const scorer = await writeFirstValueScorer(path.join(dir, 'score.mjs'));
    const result = await runSoup(['interpolate', first, second, '--eval-cmd', `node '${scorer}' {ckpt}`, '--steps', '5', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.backend, 'command');
    assert.deepEqual(
      doc.points,
      [0.25, 0.375, 0.5, 0.625, 0.75].map((score, i) => ({ t: i / 4, score })),
    );
    assert.equal(doc.barrier, false);
  });

  it('refuses a folder of several checkpoints, and checkpoints that do not match', async () => {
    const several = await runSoup(['interpolate', path.join(fixtures, 'ingredients'), a, '--val', val]);
    assert.equal(several.code, 2);
    assert.equal(
      several.stderr,
      `soup: error: ${path.join(fixtures, 'ingredients')} holds 8 checkpoints; soup interpolate goes from one checkpoint to another\n`,
    );
    const other = await writeSafetensorsFile(path.join(dir, 'other.safetensors'), { w: { dtype: 'F32', shape: [2], values: [1, 2] } });
    const mismatch = await runSoup(['interpolate', path.join(dir, 'x.safetensors'), other, '--eval-cmd', 'echo 1 {ckpt}']);
    assert.equal(mismatch.code, 2);
    assert.match(mismatch.stderr, /^soup: error: size mismatch for w: \[1\] in .*x\.safetensors vs \[2\] in .*other\.safetensors/);
    const steps = await runSoup(['interpolate', a, b, '--val', val, '--steps', '1']);
    assert.equal(steps.code, 2);
    assert.equal(steps.stderr, 'soup: error: --steps: must be at least 2 (the two end points)\n');
  });

  it('refuses ONNX models with BatchNorm folded into Conv weights, as uniform does, unless --allow-fused', async () => {
    const spec = (seed: number) => linearSpec(seed, { weightName: 'onnx::Conv_12' });
    const first = await writeModel(path.join(dir, 'fused', 'a.onnx'), spec(1));
    const second = await writeModel(path.join(dir, 'fused', 'b.onnx'), spec(2));
    const result = await runSoup(['interpolate', first, second, '--eval-cmd', 'echo 0.5 # {ckpt}', '--steps', '2']);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      /^soup: error: .*a\.onnx: has Conv weights with BatchNorm folded in \(onnx::Conv_12, and no BatchNormalization node\).*or pass --allow-fused to soup them anyway\)\n$/,
    );
    const allowed = await runSoup(['interpolate', first, second, '--eval-cmd', 'echo 0.5 # {ckpt}', '--steps', '2', '--allow-fused', '--json']);
    assert.equal(allowed.code, 0, allowed.stderr);
    assert.deepEqual(JSON.parse(allowed.stdout).points, [
      { t: 0, score: 0.5 },
      { t: 1, score: 0.5 },
    ]);
  });

  it('shows which way the metric points, and minimises a loss', async () => {
    const result = await runSoup(['interpolate', a, b, '--val', val, '--steps', '2', '--metric', 'loss', '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).direction, 'minimize');
    const text = await runSoup(['interpolate', a, b, '--val', val, '--steps', '2', '--metric', 'loss', '--backend', 'wasm']);
    assert.match(text.stdout, /^Interpolation from lr1e-4-s1 \(t = 0\) to lr3e-2-s8 \(t = 1\), loss \(lower is better\) on val/);
  });
});
