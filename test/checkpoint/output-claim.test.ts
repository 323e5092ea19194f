import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeFloats } from '../../src/checkpoint/dtype.js';
import { OnnxCheckpoint } from '../../src/checkpoint/onnx/reader.js';
import { claimOutput, lockPathFor, type ReplaceSteps } from '../../src/checkpoint/output-claim.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { fixedMetadata, writeCheckpoint, type OutputTarget } from '../../src/checkpoint/writer.js';
import { UsageError } from '../../src/errors.js';
import { f32, once, tempDir } from '../helpers/files.js';
import { linearSpec, writeModel } from '../helpers/onnx.js';

const dir = await tempDir();
const tensors = [{ name: 'w', shape: [2], dtype: 'F32' as const }];

/** A process that runs until killed, and the id it had once it is gone. */
async function otherProcess(): Promise<{ pid: number; stop: () => Promise<void> }> {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  await new Promise((resolve) => child.once('spawn', resolve));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  return {
    pid: child.pid!,
    stop: async () => {
      child.kill('SIGKILL');
      await exited;
    },
  };
}

/**
 * fs steps of a process killed at its `killAt`th step (0-based): that step and every later one do
 * nothing and fail, as nothing runs after kill -9. Returns the names of the steps done.
 */
function killedSteps(killAt: number): { steps: ReplaceSteps; done: string[] } {
  const done: string[] = [];
  let count = 0;
  const step = async (name: string, run: () => Promise<void>): Promise<void> => {
    if (count++ >= killAt) throw Object.assign(new Error('killed'), { code: 'EINTR' });
    await run();
    done.push(name);
  };
  return {
    done,
    steps: {
      rename: (from, to) =>
        step(
          `rename ${path.basename(from).replace(/tmp-\d+-[0-9a-f]{8}/, 'tmp')} -> ${path
            .basename(to)
            .replace(/tmp-\d+-[0-9a-f]{8}/, 'tmp')
            .replace(/\.[0-9a-f]{8}\.data$/, '.HEX.data')}`,
          () => rename(from, to),
        ),
      remove: (target) =>
        step(
          `remove ${path
            .basename(target)
            .replace(/tmp-\d+-[0-9a-f]{8}/, 'tmp')
            .replace(/\.[0-9a-f]{8}\.data$/, '.HEX.data')}`,
          () => rm(target, { recursive: true, force: true }),
        ),
    },
  };
}

/** Writes `values` to `target` under a claim, with its replacement killed at step `killAt` (never: -1). */
async function killedWrite(target: OutputTarget, values: number[], killAt: number): Promise<string[]> {
  const claim = await claimOutput(target.path);
  const { steps, done } = killAt === -1 ? { steps: undefined, done: [] } : killedSteps(killAt);
  await writeCheckpoint(target, tensors, fixedMetadata({}), () => once(f32(values)), new Map(), { claim, steps }).catch(() => {});
  // Killed: nothing after the step runs, so the lock stays too.
  claim.keep();
  return done;
}

describe('claimOutput', () => {
  it('refuses a second writer of the same output with exit 2, and takes over the lock of a writer that is gone', async () => {
    const out = path.join(dir, 'contested.safetensors');
    const first = await claimOutput(out);
    await assert.rejects(claimOutput(out), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.exitCode, 2);
      assert.equal(error.message, `${out} is being written by another soup (process ${process.pid})`);
      return true;
    });
    await first.release();
    const other = await otherProcess();
    await writeFile(lockPathFor(out), JSON.stringify({ pid: other.pid }));
    await assert.rejects(claimOutput(out), new RegExp(`is being written by another soup \\(process ${other.pid}\\)$`));
    await other.stop();
    const taken = await claimOutput(out);
    assert.deepEqual(taken.notices, []);
    await taken.release();
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.includes('contested')),
      [],
    );
  });

  it('removes the temporary files of writers that are gone, says so, and keeps those of a writer still running', async () => {
    const folder = path.join(dir, 'leftovers');
    await mkdir(folder);
    const out = path.join(folder, 'out.safetensors');
    const gone = await otherProcess();
    await gone.stop();
    const running = await otherProcess();
    const dead = [`.out.safetensors.tmp-${gone.pid}-0badf00d`, `.out.safetensors.tmp-${gone.pid}-0badf00d.data`];
    const alive = `.out.safetensors.tmp-${running.pid}-c0ffee00`;
    for (const name of [...dead, alive, '.other.safetensors.tmp-1-00000000']) await writeFile(path.join(folder, name), 'partial');
    const claim = await claimOutput(out);
    assert.deepEqual(
      claim.notices,
      dead.map((name) => `removed ${path.join(folder, name)}, left by an earlier soup that was killed`),
    );
    await claim.release();
    await running.stop();
    assert.deepEqual(await readdir(folder), ['.other.safetensors.tmp-1-00000000', alive].sort());
  });
});

describe('an interrupted replacement', () => {
  it('is finished by the next claim, wherever the writer was killed: the output is never lost', async () => {
    const outcomes: string[] = [];
    for (const killAt of [0, 1, 2, -1]) {
      const folder = path.join(dir, `killed-${killAt}`);
      await mkdir(folder);
      const out = path.join(folder, 'out.safetensors');
      await killedWrite({ kind: 'safetensors', path: out }, [1, 1], -1);
      await claimOutput(out).then((claim) => claim.release());
      const done = await killedWrite({ kind: 'safetensors', path: out }, [2, 2], killAt);
      const before = await valuesOf(out);
      const claim = await claimOutput(out);
      await claim.release();
      outcomes.push(
        `killed after [${done.join(', ')}]: ${before}; next run: ${claim.notices.join('; ').replaceAll(folder, '.') || 'nothing to do'}; then ${await valuesOf(out)}, ${(await readdir(folder)).join(' ')}`,
      );
    }
    assert.deepEqual(outcomes, [
      // The first rename failed and nothing had moved: the writer's own clean-up left the old output.
      'killed after []: 1,1; next run: nothing to do; then 1,1, out.safetensors',
      'killed after [rename out.safetensors -> .out.safetensors.tmp.old]: missing; next run: finished replacing ./out.safetensors, which an earlier soup was killed in the middle of; then 2,2, out.safetensors',
      'killed after [rename out.safetensors -> .out.safetensors.tmp.old, rename .out.safetensors.tmp -> out.safetensors]: 2,2; next run: finished replacing ./out.safetensors, which an earlier soup was killed in the middle of; then 2,2, out.safetensors',
      'killed after []: 2,2; next run: nothing to do; then 2,2, out.safetensors',
    ]);
  });

  it("never leaves an ONNX model beside another model's external data, and the next claim finishes it", async () => {
    const outcomes: string[] = [];
    for (const killAt of [0, 1, 2, 3, 4]) {
      const folder = path.join(dir, `onnx-killed-${killAt}`);
      const reference = await OnnxCheckpoint.open(await writeModel(path.join(folder, 'in', 'in.onnx'), linearSpec(2)));
      const out = path.join(folder, 'out.onnx');
      const target: OutputTarget = { kind: 'onnx', path: out, reference, externalAbove: 100 };
      const plan = reference.tensors().map(({ name, shape, dtype }) => ({ name, shape, dtype }));
      const write = async (scale: number, at: number): Promise<string[]> => {
        const claim = await claimOutput(out);
        const { steps, done } = at === -1 ? { steps: undefined, done: [] } : killedSteps(at);
        const produce = async function* (tensor: { name: string }) {
          yield encodeFloats(
            Array.from(await reference.readFloats(tensor.name), (v) => v * scale),
            'F32',
          );
        };
        await writeCheckpoint(target, plan, fixedMetadata({ 'soup.recipe': `{"scale":${scale}}` }), produce, new Map(), { claim, steps }).catch(() => {});
        claim.keep();
        return done;
      };
      await write(2, -1);
      await claimOutput(out).then((claim) => claim.release());
      const done = await write(3, killAt);
      const before = await onnxState(out);
      const claim = await claimOutput(out);
      await claim.release();
      outcomes.push(
        `killed after [${done.join(', ')}]: ${before}; next run: ${await onnxState(out)}, ${(await readdir(folder))
          .filter((name) => name !== 'in')
          .map((name) => name.replace(/\.[0-9a-f]{8}\.data$/, '.HEX.data'))
          .join(' ')}`,
      );
      await reference.close();
    }
    assert.deepEqual(outcomes, [
      'killed after []: model x2 with its data; next run: model x2 with its data, out.onnx out.onnx.data',
      'killed after [rename .out.onnx.tmp.data -> out.onnx.HEX.data]: model x2 with its data; next run: model x3 with its data, out.onnx out.onnx.HEX.data',
      'killed after [rename .out.onnx.tmp.data -> out.onnx.HEX.data, rename out.onnx -> .out.onnx.tmp.old]: missing; next run: model x3 with its data, out.onnx out.onnx.HEX.data',
      'killed after [rename .out.onnx.tmp.data -> out.onnx.HEX.data, rename out.onnx -> .out.onnx.tmp.old, rename .out.onnx.tmp -> out.onnx]: model x3 with its data; next run: model x3 with its data, out.onnx out.onnx.HEX.data',
      'killed after [rename .out.onnx.tmp.data -> out.onnx.HEX.data, rename out.onnx -> .out.onnx.tmp.old, rename .out.onnx.tmp -> out.onnx, remove .out.onnx.tmp.data.old]: model x3 with its data; next run: model x3 with its data, out.onnx out.onnx.HEX.data',
    ]);
  });
});

/** The values of a one-tensor safetensors output, or "missing". */
async function valuesOf(file: string): Promise<string> {
  const checkpoint = await SafetensorsFile.open(file).catch(() => undefined);
  if (checkpoint === undefined) return 'missing';
  const values = [...(await checkpoint.readFloats('w'))].join(',');
  await checkpoint.close();
  return values;
}

/** Which soup an ONNX output is (its recipe's scale), and whether its weights are that soup's. */
async function onnxState(file: string): Promise<string> {
  const model = await OnnxCheckpoint.open(file).catch(() => undefined);
  if (model === undefined) return 'missing';
  try {
    const scale = (JSON.parse(model.metadata['soup.recipe']!) as { scale: number }).scale;
    const bias = [...(await model.readFloats('fc.bias'))];
    // linearSpec's bias is [1, -1]: the data file the model points at must hold this soup's values.
    return bias[0] === scale && bias[1] === -scale ? `model x${scale} with its data` : `model x${scale} with the data of x${bias[0]}`;
  } finally {
    await model.close();
  }
}
