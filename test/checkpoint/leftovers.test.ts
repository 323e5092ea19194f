import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

describe('leftovers of killed runs', () => {
  it('a soup removes the partial output a killed soup left beside its output, and says so on stderr', async () => {
    const runs = path.join(dir, 'runs');
    await writeSafetensorsFile(path.join(runs, 'a.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(runs, 'b.safetensors'), mlpTensors(2));
    // The id of a process that has ended: no running soup owns this partial file.
    const gone = spawnSync('true').pid;
    const partial = path.join(dir, `.soup.safetensors.tmp-${gone}-0123abcd`);
    await writeFile(partial, 'half a soup');
    const result = await runSoup(['uniform', runs, '-o', path.join(dir, 'soup.safetensors')]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, `soup: warning: removed ${partial}, left by an earlier soup that was killed\n`);
    assert.deepEqual((await readdir(dir)).sort(), ['runs', 'soup.safetensors']);
  });

  it('a soup refuses, with exit 2, an output another running soup has claimed', async () => {
    const runs = path.join(dir, 'runs');
    const out = path.join(dir, 'claimed.safetensors');
    await writeFile(path.join(dir, '.claimed.safetensors.soup-lock'), JSON.stringify({ pid: process.pid }));
    const result = await runSoup(['uniform', runs, '-o', out]);
    assert.equal(
      result.stderr,
      `soup: error: ${out} is being written by another soup (process ${process.pid}) (wait for it to finish, or write elsewhere; if no soup runs, remove ${path.join(dir, '.claimed.safetensors.soup-lock')})\n`,
    );
    assert.equal(result.code, 2);
  });
});
