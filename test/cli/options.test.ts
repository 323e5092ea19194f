import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandArguments } from '../../src/cli/options.js';

describe('the recorded command line', () => {
  it('keeps what makes the soup, records the output as {output}, and drops flags that only change what is printed', () => {
    assert.deepEqual(commandArguments(['greedy', 'runs', '--eval-cmd', 'python eval.py {ckpt}', '-o', 'soup', '--json', '--force', '-q', '--jobs', '8']), [
      'greedy',
      'runs',
      '--eval-cmd',
      'python eval.py {ckpt}',
      '-o',
      '{output}',
      '--jobs',
      '8',
    ]);
    assert.deepEqual(commandArguments(['uniform', 'runs', '--output=a.safetensors', '--no-color', '--debug']), ['uniform', 'runs', '--output={output}']);
    assert.deepEqual(commandArguments(['uniform', 'runs', '-osoup']), ['uniform', 'runs', '-o{output}']);
  });
});
