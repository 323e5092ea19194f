import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadDataset } from '../../src/data/dataset.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();

/** .npz files as numpy writes them (ZIP64 local headers included), stored and compressed. */
function numpySave(file: string, compressed: boolean, dtype: string): void {
  execFileSync('/usr/bin/python3', [
    '-c',
    'import sys, numpy as np\n' +
      'rng = np.random.default_rng(1)\n' +
      `x = (rng.random((700, 6, 5, 3)) * 255).astype("${dtype}")\n` +
      'y = np.arange(700, dtype=np.int64) % 7\n' +
      `(np.savez_compressed if ${compressed ? 'True' : 'False'} else np.savez)(sys.argv[1], x=x, y=y)`,
    file,
  ]);
}

describe('large .npz files', () => {
  for (const compressed of [false, true]) {
    it(`reads a ${compressed ? 'compressed' : 'stored'} numpy .npz batch by batch, with the values of a whole read`, async () => {
      const file = path.join(dir, `${compressed ? 'compressed' : 'stored'}.npz`);
      numpySave(file, compressed, 'uint8');
      const whole = await loadDataset(file, { scale: 1 / 255, mean: [0.5], std: [0.25] });
      const streamed = await loadDataset(file, { scale: 1 / 255, mean: [0.5], std: [0.25] }, { inMemoryBytes: 0 });
      assert.equal(whole.streamed, false);
      assert.equal(streamed.streamed, true);
      assert.equal(streamed.n, 700);
      assert.deepEqual(streamed.sampleShape, [6, 5, 3]);
      assert.deepEqual([...streamed.y.subarray(0, 9)], [0, 1, 2, 3, 4, 5, 6, 0, 1]);
      const expected = await whole.read(0, 700);
      const fit = streamed.fitTo([6, 5, 3]);
      const parts: Float32Array[] = [];
      for await (const batch of streamed.batches(128, fit)) parts.push(batch.x);
      assert.deepEqual(Buffer.concat(parts.map((p) => Buffer.from(p.buffer))), Buffer.from(expected.buffer));
      // Out of order: a compressed entry is inflated again from its start.
      assert.deepEqual([...(await streamed.read(650, 2))], [...expected.subarray(650 * 90, 652 * 90)]);
      assert.deepEqual([...(await streamed.read(3, 1))], [...expected.subarray(3 * 90, 4 * 90)]);
    });
  }

  it('reads float32 arrays by offset', async () => {
    const file = path.join(dir, 'float.npz');
    numpySave(file, false, 'float32');
    const whole = await loadDataset(file);
    const streamed = await loadDataset(file, {}, { inMemoryBytes: 0 });
    assert.deepEqual([...(await streamed.read(100, 3))], [...(await whole.read(100, 3))]);
  });

  it('names a truncated large .npz', async () => {
    const file = path.join(dir, 'cut.npz');
    numpySave(file, true, 'uint8');
    const bytes = await readFile(file);
    await writeFile(file, bytes.subarray(0, bytes.length - 200));
    await assert.rejects(loadDataset(file, {}, { inMemoryBytes: 0 }), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(error.message, /cut\.npz: not a readable \.npz \(zip\) file/);
      return true;
    });
  });
});
