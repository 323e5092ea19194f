import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const runs = path.join(dir, 'runs');
await writeSafetensorsFile(path.join(runs, 'a.safetensors'), mlpTensors(1));
await writeSafetensorsFile(path.join(runs, 'b.safetensors'), mlpTensors(2));

const isRunning = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(condition: () => boolean | Promise<boolean>, what: string, seconds = 10): Promise<void> {
  const end = Date.now() + seconds * 1000;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('evaluation commands', () => {
  it('die with soup when soup is killed with SIGKILL, and the next run removes the candidate it left and says so', async () => {
    const tmp = path.join(dir, 'tmp');
    await mkdir(tmp);
    const pidFile = path.join(dir, 'eval.pid');
    // The command's own child (sleep) is what a plain kill of the shell would leave running.
    const command = `sh -c 'sleep 60 & echo $! > "$0"; wait' ${JSON.stringify(pidFile)} # {ckpt}`;
    const soup = spawn(process.execPath, [SOUP_BIN, 'greedy', runs, '--eval-cmd', command, '-o', path.join(dir, 'soup.safetensors')], {
      stdio: 'ignore',
      env: { ...process.env, TMPDIR: tmp, XDG_CACHE_HOME: TEST_CACHE_HOME },
    });
    const exited = new Promise((resolve) => soup.once('exit', resolve));
    await until(async () => existsSync(pidFile) && (await readFile(pidFile, 'utf8')).endsWith('\n'), 'the evaluation runs');
    const sleeper = Number(await readFile(pidFile, 'utf8'));
    assert.ok(isRunning(sleeper));
    soup.kill('SIGKILL');
    await exited;
    await until(() => !isRunning(sleeper), 'the evaluation command is gone', 5);
    const left = await readdir(tmp);
    assert.equal(left.length, 1, 'a killed run cannot remove its candidate');
    const next = await runSoup(['greedy', runs, '--eval-cmd', 'echo 1 # {ckpt}', '-o', path.join(dir, 'next.safetensors')], { env: { TMPDIR: tmp } });
    assert.equal(next.code, 0, next.stderr);
    assert.match(
      next.stderr,
      new RegExp(`^soup: warning: removed ${path.join(tmp, left[0]!).replace(/[.]/g, '\\.')}, left by an earlier soup that was killed$`, 'm'),
    );
    assert.deepEqual(await readdir(tmp), []);
  });
});
