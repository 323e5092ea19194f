import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitArguments } from '../../src/eval/slurm.js';

describe('splitArguments', () => {
  it('splits --slurm-args as a shell would, keeping quoted spaces and dropping the quotes', () => {
    assert.deepEqual(splitArguments(`--gres=gpu:1  --time=2:00:00 --comment="a soup of 8" --job-name='x y' a\\ b`), [
      '--gres=gpu:1',
      '--time=2:00:00',
      '--comment=a soup of 8',
      '--job-name=x y',
      'a b',
    ]);
    assert.deepEqual(splitArguments(''), []);
    assert.deepEqual(splitArguments(`--comment=""`), ['--comment=']);
  });

  it('refuses an unclosed quote, naming it', () => {
    assert.throws(() => splitArguments(`--comment="half`), { message: '--slurm-args has an unclosed ": --comment="half' });
  });
});
