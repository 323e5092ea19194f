import assert from 'node:assert/strict';
import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { checkOutputPath, fixedMetadata, writeCheckpoint } from '../../src/checkpoint/writer.js';
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
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), []);
  });

  it('removes its temporary file when producing a tensor fails, for safetensors and torch.save files alike', async () => {
    for (const target of [{ kind: 'safetensors', path: path.join(dir, 'failing.safetensors') }, { kind: 'pytorch', path: path.join(dir, 'failing.pt') }] as const) {
      await assert.rejects(
        writeCheckpoint(target, tensors, fixedMetadata({}), async function* () {
          yield f32([1]);
          throw new Error('boom');
        }),
        /boom/,
      );
    }
    assert.deepEqual((await readdir(dir)).filter((f) => f.includes('failing')), []);
  });
});
