import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { checkOutputPath, fixedMetadata, replaceOutput, writeCheckpoint, type ReplaceSteps } from '../../src/checkpoint/writer.js';
import { UsageError } from '../../src/errors.js';
import { f32, tempDir, once } from '../helpers/files.js';

const dir = await tempDir();
const tensors = [{ name: 'w', shape: [2], dtype: 'F32' as const }];

describe('checkOutputPath', () => {
  it('refuses an output whose folder does not exist', async () => {
    await assert.rejects(checkOutputPath(path.join(dir, 'no', 'such', 'out.safetensors'), false), (error: unknown) => {
      assert.ok(error instanceof UsageError);
      assert.match(error.message, /out\.safetensors: the folder .*no\/such does not exist/);
      return true;
    });
  });

  it('accepts an existing output only with force', async () => {
    const out = path.join(dir, 'exists.safetensors');
    await writeFile(out, 'x');
    await assert.rejects(checkOutputPath(out, false), /already exists/);
    await checkOutputPath(out, true);
  });
});

describe('writeCheckpoint', () => {
  it('writes each shard of a sharded output while the next chunk is produced, when the producer keeps two buffers in turn', async () => {
    const out = path.join(dir, 'overlapped-shards');
    const elements = 1 << 22;
    const chunkElements = 1 << 20;
    const plan = ['a', 'b'].map((name) => ({ name, shape: [elements], dtype: 'F32' as const }));
    const layout = new Map([
      ['a', 'model-00001-of-00002.safetensors'],
      ['b', 'model-00002-of-00002.safetensors'],
    ]);
    const buffers = [new Float32Array(chunkElements), new Float32Array(chunkElements)];
    let turn = 0;
    // When asked for a chunk, how many bytes the shard being written held: fewer than the chunks
    // already handed over means the writer asked before the last one was written.
    let handedOver = 0;
    const behind: boolean[] = [];
    const shardBeingWritten = async (tensor: string) => {
      const temp = (await readdir(dir)).find((entry) => entry.startsWith('.overlapped-shards.tmp-'))!;
      return path.join(dir, temp, layout.get(tensor)!);
    };
    const produce = Object.assign(
      async function* (tensor: { name: string }) {
        const shard = await shardBeingWritten(tensor.name);
        handedOver = 0;
        for (let start = 0; start < elements; start += chunkElements) {
          if (handedOver > 0) behind.push(statSync(shard).size < handedOver);
          const buffer = buffers[turn++ % 2]!;
          buffer.fill(start + (tensor.name === 'b' ? 0.5 : 0));
          handedOver += buffer.byteLength;
          yield new Uint8Array(buffer.buffer);
        }
      },
      { alternatesBuffers: true },
    );
    await writeCheckpoint({ kind: 'safetensors-sharded', path: out, layout }, plan, fixedMetadata({}), produce);
    assert.ok(
      behind.some((late) => late),
      `the writer waited for every write before asking for the next chunk (${behind.length} chunks)`,
    );
    const back = await SafetensorsFile.open(path.join(out, 'model-00002-of-00002.safetensors'));
    const values = await back.readFloats('b');
    await back.close();
    assert.deepEqual([values[0], values[chunkElements], values[elements - 1]], [0.5, chunkElements + 0.5, elements - chunkElements + 0.5]);
  });

  it('replaces an existing output folder as a whole', async () => {
    const out = path.join(dir, 'folder-out');
    await mkdir(out);
    await writeFile(path.join(out, 'stale.txt'), 'old');
    const result = await writeCheckpoint({ kind: 'safetensors-folder', path: out }, tensors, fixedMetadata({}), () => once(f32([1, 2])));
    assert.deepEqual(await readdir(out), ['model.safetensors']);
    assert.deepEqual(result.files, [path.join(out, 'model.safetensors')]);
    const back = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.deepEqual([...(await back.readFloats('w'))], [1, 2]);
    await back.close();
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes('.tmp-')),
      [],
    );
  });

  it('removes its temporary file when producing a tensor fails, for safetensors and torch.save files alike', async () => {
    for (const target of [
      { kind: 'safetensors', path: path.join(dir, 'failing.safetensors') },
      { kind: 'pytorch', path: path.join(dir, 'failing.pt') },
    ] as const) {
      await assert.rejects(
        writeCheckpoint(target, tensors, fixedMetadata({}), async function* () {
          yield f32([1]);
          throw new Error('boom');
        }),
        /boom/,
      );
    }
    assert.deepEqual(
      (await readdir(dir)).filter((f) => f.includes('failing')),
      [],
    );
  });
});

describe('replaceOutput', () => {
  /** fs steps that fail at the `failAt`th call (0-based), after doing the ones before it for real. */
  function failingSteps(failAt: number): { steps: ReplaceSteps; calls: string[] } {
    const calls: string[] = [];
    const step = async (name: string, run: () => Promise<void>): Promise<void> => {
      calls.push(name);
      if (calls.length - 1 === failAt) throw Object.assign(new Error('injected'), { code: 'EIO' });
      await run();
    };
    return {
      calls,
      steps: {
        rename: (from, to) => step(`rename ${path.basename(from)} -> ${path.basename(to)}`, () => rename(from, to)),
        remove: (target) => step(`remove ${path.basename(target)}`, () => rm(target, { recursive: true, force: true })),
      },
    };
  }

  /** The text of an output file or folder (its model.safetensors), or "missing". */
  async function textOf(output: string): Promise<string> {
    const info = await stat(output).catch(() => undefined);
    if (info === undefined) return 'missing';
    return readFile(info.isDirectory() ? path.join(output, 'model.safetensors') : output, 'utf8');
  }

  for (const kind of ['file', 'folder'] as const) {
    it(`keeps the old output ${kind} whole, or puts the new one in whole, when any step fails`, async () => {
      const make = async (at: string, text: string): Promise<void> => {
        if (kind === 'file') return writeFile(at, text);
        await mkdir(at);
        await writeFile(path.join(at, 'model.safetensors'), text);
      };
      const name = kind === 'file' ? 'out.safetensors' : 'out';
      const outcomes: string[] = [];
      for (const failAt of [0, 1, 2, -1]) {
        const folder = path.join(dir, `replace-${kind}-${failAt}`);
        await mkdir(folder);
        const final = path.join(folder, name);
        const temp = path.join(folder, `.${name}.tmp`);
        await make(final, 'old');
        await make(temp, 'new');
        const { steps, calls } = failingSteps(failAt);
        const result = await replaceOutput(temp, final, steps).then(
          () => 'done',
          (error: Error) => error.message.replace(`${folder}/`, ''),
        );
        const failed = failAt === -1 ? 'no step' : calls[failAt];
        outcomes.push(`${failed} fails: ${name} is ${await textOf(final)}, aside ${await textOf(`${temp}.old`)} (${result})`);
      }
      const problem = `${name}: cannot move the finished output into place: injected`;
      assert.deepEqual(outcomes, [
        `rename ${name} -> .${name}.tmp.old fails: ${name} is old, aside missing (${problem})`,
        `rename .${name}.tmp -> ${name} fails: ${name} is old, aside missing (${problem})`,
        `remove .${name}.tmp.old fails: ${name} is new, aside old (done)`,
        `no step fails: ${name} is new, aside missing (done)`,
      ]);
    });
  }
});
