import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { uniqueNames } from '../../src/checkpoint/names.js';

describe('uniqueNames', () => {
  it('keeps short names that are unique and lengthens only the ones that collide, by as few folders as tell them apart', () => {
    const names = uniqueNames([
      { name: 'checkpoint-282', source: '/sweeps/a/ft-lr1e-3-s1/checkpoint-282' },
      { name: 'checkpoint-282', source: '/sweeps/a/ft-lr1e-3-s2/checkpoint-282' },
      { name: 'run-9', source: '/sweeps/b/run-9.safetensors' },
    ]);
    assert.deepEqual(names, ['ft-lr1e-3-s1/checkpoint-282', 'ft-lr1e-3-s2/checkpoint-282', 'run-9']);
  });

  it('goes up as many folders as needed when the nearest parents agree too', () => {
    const names = uniqueNames([
      { name: 'checkpoint-10', source: '/x/seed-1/out/checkpoint-10' },
      { name: 'checkpoint-10', source: '/x/seed-2/out/checkpoint-10' },
    ]);
    assert.deepEqual(names, ['seed-1/out/checkpoint-10', 'seed-2/out/checkpoint-10']);
  });

  it('starts from minDepth folders whether or not the short name is unique', () => {
    assert.deepEqual(uniqueNames([{ name: 'checkpoint-30', source: '/s/ft-a/checkpoint-30', minDepth: 1 }]), ['ft-a/checkpoint-30']);
  });

  it('leaves names that no folder tells apart short, for the caller to report', () => {
    assert.deepEqual(
      uniqueNames([
        { name: 'w', source: '/r/w.safetensors' },
        { name: 'w', source: '/r/w.pt' },
      ]),
      ['w', 'w'],
    );
  });
});
