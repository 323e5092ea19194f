import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import { inspectCheckpoints } from '../../../src/soup/strategies/inspect.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';

const dir = await tempDir();
const open = async (name: string, values: number[], metadata?: Record<string, string>) =>
  SafetensorsFile.open(await writeSafetensorsFile(path.join(dir, name), { w: { dtype: 'F32', shape: [values.length], values } }, metadata));
const a = await open('a.safetensors', [1, 2], { run: 'a' });
const b = await open('b.safetensors', [3, 4]);
const wide = await open('wide.safetensors', [1, 2, 3]);
after(() => Promise.all([a, b, wide].map((checkpoint) => checkpoint.close())));

describe('inspectCheckpoints', () => {
  it('describes each checkpoint and says whether they soup together', () => {
    const fit = inspectCheckpoints([a, b]);
    assert.deepEqual(fit.checkpoints[0], {
      name: 'a',
      path: a.path,
      format: 'safetensors',
      tensors: [{ name: 'w', dtype: 'F32', shape: [2] }],
      parameters: 2,
      bytes: 8,
      metadata: { run: 'a' },
      notes: [],
      recipe: null,
    });
    assert.equal(fit.compatible, true);
    assert.deepEqual(fit.problems, []);
    const misfit = inspectCheckpoints([a, wide]);
    assert.equal(misfit.compatible, false);
    assert.match(misfit.problems[0]!, /^size mismatch for w: \[2\] in /);
  });
});
