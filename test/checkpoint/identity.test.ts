import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { shellQuote } from '../../src/shell.js';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

describe('ingredients rewritten during a soup', () => {
  it('fail the soup with exit 2 and write nothing, when an ingredient changes while the soup is being made', async () => {
    const runs = path.join(dir, 'runs');
    await writeSafetensorsFile(path.join(runs, 'a.safetensors'), mlpTensors(1));
    const b = await writeSafetensorsFile(path.join(runs, 'b.safetensors'), mlpTensors(2));
    // Same size, other values: a training job saving its next checkpoint over the one being souped.
    const next = await writeSafetensorsFile(path.join(dir, 'next.safetensors'), mlpTensors(3));
    const out = path.join(dir, 'soup.safetensors');
    const command = `cp ${shellQuote(next)} ${shellQuote(b)}; echo 0.5 # {ckpt}`;
    const result = await runSoup(['greedy', runs, '--eval-cmd', command, '-o', out]);
    assert.equal(
      result.stderr,
      `soup: error: ${b}: changed while soup was reading it (size, modification time or inode differ); nothing was written (run again once the file is no longer being written)\n`,
    );
    assert.equal(result.code, 2);
    assert.equal(existsSync(out), false);
  });
});
