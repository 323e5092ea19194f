import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;

/** Runs soup on a pseudo-terminal (util-linux `script`), as a person at a terminal sees it. */
function onTerminal(args: string[]): string {
  const quoted = [process.execPath, SOUP_BIN, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  const result = spawnSync('script', ['-qec', quoted, '/dev/null'], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME, COLUMNS: '120' },
  });
  assert.equal(result.status, 0, result.stdout + result.stderr);
  return result.stdout;
}

describe('progress on a terminal', () => {
  const runs = path.join(dir, 'runs');

  it('shows a byte progress bar while averaging, and none with --quiet or --json', async () => {
    for (const k of [1, 2, 3]) {
      await writeSafetensorsFile(path.join(runs, `run-${k}.safetensors`), {
        w: { dtype: 'F32', shape: [2_000_000], bytes: new Uint8Array(8_000_000).fill(k) },
      });
    }
    const shown = onTerminal(['uniform', runs, '-o', path.join(dir, 'a.safetensors')]);
    assert.match(shown, /reading .*\d+% \| [\d.]+ (kB|MB) \/ 24\.0 MB/);
    assert.match(shown, /Uniform soup of 3 ingredients/);
    assert.doesNotMatch(onTerminal(['uniform', runs, '-o', path.join(dir, 'b.safetensors'), '--quiet']), /reading/);
    assert.doesNotMatch(onTerminal(['uniform', runs, '-o', path.join(dir, 'c.safetensors'), '--json']), /reading/);
  });

  it('shows which candidate is being scored during a greedy soup', () => {
    const shown = onTerminal(['greedy', path.join(fixtures, 'ingredients'), '--val', path.join(fixtures, 'data', 'val'), '-o', path.join(dir, 'greedy')]);
    assert.match(shown, /scoring .*\| \d+ \/ 15 {2}lr/);
    assert.match(shown, /Greedy soup of 8 ingredients/);
  });
});
