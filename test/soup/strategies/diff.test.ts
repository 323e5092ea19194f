import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import { diffAgainst } from '../../../src/soup/strategies/diff.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';

const dir = await tempDir();
const open = async (name: string, values: number[]) =>
  SafetensorsFile.open(await writeSafetensorsFile(path.join(dir, name), { w: { dtype: 'F32', shape: [values.length], values } }));
const a = await open('a.safetensors', [1, 2]);
const same = await open('same.safetensors', [1, 2]);
const b = await open('b.safetensors', [1, 2.5]);
after(() => Promise.all([a, same, b].map((checkpoint) => checkpoint.close())));

describe('diffAgainst', () => {
  it('judges the largest difference: identical, within the tolerance, or different', async () => {
    const identical = await diffAgainst(a, same, 0);
    assert.deepEqual(identical, {
      a: a.path,
      b: same.path,
      tolerance: 0,
      verdict: 'identical',
      maxAbsDiff: 0,
      worst: 'w',
      minCosine: 1,
      tensors: [{ name: 'w', maxAbsDiff: 0, cosine: 1 }],
    });
    assert.equal((await diffAgainst(a, b, 0.5)).verdict, 'within-tolerance');
    const different = await diffAgainst(a, b, 0.25);
    assert.equal(different.verdict, 'different');
    assert.equal(different.maxAbsDiff, 0.5);
  });
});
