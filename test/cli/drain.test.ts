import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';

const dir = await tempDir();

describe('stdout at exit', () => {
  it('a --json document of 200 KB arrives whole through a pipe whose reader starts late', async () => {
    const tensors: Record<string, RawTensor> = {};
    for (let k = 0; k < 1500; k++) tensors[`encoder.layers.${k}.attention.output.dense.weight`] = { dtype: 'F32', shape: [1], values: [k] };
    const file = await writeSafetensorsFile(path.join(dir, 'many.safetensors'), tensors);
    const child = spawn(process.execPath, [SOUP_BIN, 'inspect', file, '--json'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
    });
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const closed = new Promise((resolve) => child.on('close', resolve));
    // The reader sleeps until soup has written all it can and is waiting to exit.
    const sleeping = new Promise((resolve) => setTimeout(resolve, 1500));
    await sleeping;
    const chunks: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    assert.equal(await exited, 0);
    await closed;
    const text = Buffer.concat(chunks).toString('utf8');
    assert.ok(text.length > 200_000, `only ${text.length} bytes arrived`);
    assert.doesNotThrow(() => JSON.parse(text), 'the document parses');
    assert.match(text, /encoder\.layers\.1499\.attention/);
  });
});
