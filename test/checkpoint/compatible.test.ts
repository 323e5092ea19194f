import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { findIncompatibilities } from '../../src/checkpoint/compatible.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const open = async (name: string, tensors: ReturnType<typeof mlpTensors>) =>
  SafetensorsFile.open(await writeSafetensorsFile(path.join(dir, `${name}.safetensors`), tensors));

describe('findIncompatibilities', () => {
  it('accepts checkpoints with the same names and shapes, even in other float dtypes', async () => {
    const a = await open('a', mlpTensors(1));
    const half = mlpTensors(2);
    half['fc2.bias'] = { dtype: 'F16', shape: [2], bytes: new Uint8Array(4) };
    assert.deepEqual(findIncompatibilities([a, await open('b', mlpTensors(2)), await open('half', half)]), []);
  });

  it('names the tensor and both shapes on a size mismatch', async () => {
    const wide = mlpTensors(2);
    wide['fc1.weight'] = { dtype: 'F32', shape: [3, 4], values: new Array(12).fill(0) };
    const problems = findIncompatibilities([await open('a', mlpTensors(1)), await open('wide', wide)]);
    assert.deepEqual(problems, [
      `size mismatch for fc1.weight: [4, 3] in ${path.join(dir, 'a.safetensors')} vs [3, 4] in ${path.join(dir, 'wide.safetensors')}`,
    ]);
  });

  it('lists missing and extra tensors, and float against integer dtypes', async () => {
    const other = mlpTensors(2);
    delete other['fc2.bias'];
    other.extra = { dtype: 'F32', shape: [1], values: [1] };
    other['fc1.bias'] = { dtype: 'I32', shape: [4], bytes: new Uint8Array(16) };
    const problems = findIncompatibilities([await open('a', mlpTensors(1)), await open('other', other)]);
    assert.equal(problems.length, 3);
    assert.match(problems[0]!, /dtype mismatch for fc1\.bias: F32 in .*a\.safetensors vs I32 in .*other\.safetensors/);
    assert.match(problems[1]!, /other\.safetensors: has tensor "extra", which .*a\.safetensors lacks/);
    assert.match(problems[2]!, /other\.safetensors: missing tensor "fc2\.bias", which .*a\.safetensors has/);
  });

  it('says when the names differ only by a prefix every name of one ingredient carries, and how to drop it', async () => {
    const prefixed = Object.fromEntries(Object.entries(mlpTensors(2)).map(([name, tensor]) => [`_orig_mod.${name}`, tensor]));
    const problems = findIncompatibilities([await open('a', mlpTensors(1)), await open('compiled', prefixed)]);
    assert.deepEqual(problems, [
      `the tensor names differ only by a prefix: every name in ${path.join(dir, 'compiled.safetensors')} starts with "_orig_mod." (added by torch.compile), ` +
        `which the names in ${path.join(dir, 'a.safetensors')} lack; save the state dict without it: {k.removeprefix("_orig_mod."): v for k, v in state_dict.items()}`,
    ]);
  });
});
