import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, readFile, readdir, readlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

/** Sweeps of one large tensor per ingredient, big enough that a run takes a moment. */
async function bigSweep(name: string, count: number, floats: number): Promise<string> {
  const folder = path.join(dir, name);
  for (let k = 0; k < count; k++) {
    await writeSafetensorsFile(path.join(folder, `run-${k}.safetensors`), {
      w: { dtype: 'F32', shape: [floats], bytes: new Uint8Array(floats * 4).fill(k + 1) },
    });
  }
  return folder;
}

function start(args: string[], env: NodeJS.ProcessEnv = {}) {
  const child = spawn(process.execPath, [SOUP_BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME, ...env },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  return { child, exit, stdout: () => stdout, stderr: () => stderr };
}

/** Whether the process holds a file under `prefix` open (Linux shows a process's files in /proc). */
async function holdsOpen(pid: number | undefined, prefix: string): Promise<boolean> {
  const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.some((target) => target.startsWith(prefix));
}

async function waitFor(condition: () => Promise<boolean>, child: { exitCode: number | null }): Promise<void> {
  while (!(await condition())) {
    if (child.exitCode !== null) throw new Error('the process ended before the moment to interrupt it');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * Runs soup in its own mount namespace with a tiny tmpfs at `mountPoint`, so a full disk or a
 * read-only folder can be simulated without touching the machine; then lists what is left there.
 */
function inSmallFilesystem(mountPoint: string, mountOptions: string, setup: string, args: string[]) {
  const quoted = (text: string) => `'${text.replace(/'/g, `'\\''`)}'`;
  const script = [
    `mount -t tmpfs -o ${mountOptions} tmpfs ${quoted(mountPoint)}`,
    setup,
    `${quoted(process.execPath)} ${quoted(SOUP_BIN)} ${args.map(quoted).join(' ')}`,
    'echo "exit=$?"',
    `ls -A ${quoted(mountPoint)}`,
    `cat ${quoted(path.join(mountPoint, 'out.safetensors'))} 2>/dev/null || true`,
  ].join('; ');
  const result = spawnSync('unshare', ['-rm', 'sh', '-c', script], {
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
  });
  assert.equal(result.status, 0, `unshare failed: ${result.stderr}`);
  return result;
}

describe('interrupts', () => {
  it('SIGTERM while scoring with --eval-cmd exits 130, removes the candidate checkpoint and keeps the old output', async () => {
    const runs = await bigSweep('scoring', 2, 16);
    const privateTmp = path.join(dir, 'tmp-scoring');
    await mkdir(privateTmp);
    const out = path.join(dir, 'scoring-soup.safetensors');
    await writeFile(out, 'old soup');
    const run = start(['greedy', runs, '--eval-cmd', 'sleep 30; echo 1 # {ckpt}', '-o', out, '--force'], { TMPDIR: privateTmp });
    await waitFor(async () => (await readdir(privateTmp)).length > 0, run.child);
    run.child.kill('SIGTERM');
    assert.equal(await run.exit, 130, run.stderr());
    assert.match(run.stderr(), /^soup: error: interrupted by SIGTERM; nothing was written$/m);
    assert.deepEqual(await readdir(privateTmp), [], 'the temporary candidate is removed');
    assert.equal(await readFile(out, 'utf8'), 'old soup');
  });

  it('SIGINT while the ingredients are being read exits 130 and leaves the old output as it was', async () => {
    const runs = await bigSweep('early', 8, 12_000_000);
    const outDir = path.join(dir, 'early-out');
    await mkdir(outDir);
    const out = path.join(outDir, 'soup.safetensors');
    await writeFile(out, 'old soup');
    const run = start(['uniform', runs, '-o', out, '--force']);
    await waitFor(() => holdsOpen(run.child.pid, runs), run.child);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 130, run.stderr());
    assert.deepEqual(await readdir(outDir), ['soup.safetensors']);
    assert.equal(await readFile(out, 'utf8'), 'old soup');
  });

  it('SIGINT in the middle of mixing, with no hashing left to wait for, exits 130 and leaves the old output as it was', async () => {
    // With the hashes cached the soup never waits on a worker: reads and writes are synchronous, and
    // only the mixer's own pauses let the signal through before the output is renamed into place.
    const runs = await bigSweep('cached', 4, 16_000_000);
    const outDir = path.join(dir, 'cached-out');
    await mkdir(outDir);
    const out = path.join(outDir, 'soup.safetensors');
    const first = start(['uniform', runs, '-o', out]);
    assert.equal(await first.exit, 0, first.stderr());
    await writeFile(out, 'old soup');
    const run = start(['uniform', runs, '-o', out, '--force']);
    await waitFor(async () => (await readdir(outDir)).length > 1, run.child);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 130, run.stderr());
    assert.deepEqual(await readdir(outDir), ['soup.safetensors']);
    assert.equal(await readFile(out, 'utf8'), 'old soup');
  });
});

describe('interrupting commands that only read', () => {
  it('SIGINT while diffing two checkpoints stops before the report, with exit 130', async () => {
    // Reads are synchronous: the signal is seen only because the reader lets the event loop run.
    const folder = path.join(dir, 'diff');
    const tensors = (fill: number) =>
      Object.fromEntries(
        Array.from({ length: 16 }, (_, k) => [`t${k}`, { dtype: 'F32' as const, shape: [2_000_000], bytes: new Uint8Array(8_000_000).fill(fill) }]),
      );
    const a = await writeSafetensorsFile(path.join(folder, 'a.safetensors'), tensors(1));
    const b = await writeSafetensorsFile(path.join(folder, 'b.safetensors'), tensors(2));
    const run = start(['diff', a, b]);
    await waitFor(() => holdsOpen(run.child.pid, folder), run.child);
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 130, run.stderr());
    assert.match(run.stderr(), /interrupted by SIGINT/);
    assert.equal(run.stdout(), '', 'no report of a diff that did not finish');
  });
});

describe('write errors', () => {
  it('a full disk gives a clear error, exit 2, and leaves no partial file next to the old output', async () => {
    const runs = await bigSweep('full-disk', 2, 50_000);
    const mountPoint = path.join(dir, 'full');
    await mkdir(mountPoint);
    const out = path.join(mountPoint, 'out.safetensors');
    const result = inSmallFilesystem(mountPoint, 'size=64k', `echo 'old soup' > '${out}'`, ['uniform', runs, '-o', out, '--force']);
    assert.match(result.stdout, /^exit=2$/m);
    assert.equal(result.stderr, `soup: error: ${out}: cannot write: no space left on device\n`);
    assert.match(result.stdout, /exit=2\nout\.safetensors\nold soup\n$/, 'only the old output is there, unchanged');
  });

  it('a read-only folder gives a clear error, exit 2, and writes nothing', async () => {
    const runs = await bigSweep('read-only', 2, 16);
    const mountPoint = path.join(dir, 'ro');
    await mkdir(mountPoint);
    const out = path.join(mountPoint, 'out.safetensors');
    const result = inSmallFilesystem(mountPoint, 'ro,size=64k', 'true', ['uniform', runs, '-o', out]);
    assert.equal(result.stderr, `soup: error: ${out}: cannot create: read-only file system\n`);
    assert.match(result.stdout, /^exit=2\n$/);
  });
});
