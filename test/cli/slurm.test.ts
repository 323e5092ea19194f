import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { SlurmJobRecord } from '../../src/eval/slurm.js';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';
import { slurm, squeue, startSlurm, stopSlurm } from '../helpers/slurm.js';

/**
 * --executor slurm against a real single-node Slurm cluster (scripts/slurm-up.sh, run as root). Every
 * test here needs the daemons; all of them are in this one file so that one cluster serves them all.
 */
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const dir = await tempDir();

/**
 * Scores a TF.js candidate by how close a fixed projection of its weights is to -0.15: on the fixture
 * ingredients, greedy accepts two steps and rejects five.
 */
const tfjsScorer = path.join(dir, 'tfjs-score.mjs');
await writeFile(
  tfjsScorer,
  `import { readFileSync } from 'node:fs';
const b = readFileSync(process.argv[2] + '/group1-shard1of1.bin');
const w = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
let s = 0;
for (let i = 0; i < w.length; i++) s += w[i] * Math.sin(i * 0.37);
console.log(JSON.stringify({ accuracy: -Math.round(Math.abs(s + 0.15) * 1e6) / 1e6 }));
`,
);

/**
 * Scores a one-float safetensors candidate as 1 - |w - 0.5|, after appending w to calls.txt in its
 * working folder. While a file hold-<w> is there, it waits (a long evaluation the test releases).
 */
const scorer = path.join(dir, 'score.mjs');
await writeFile(
  scorer,
  `import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const w = bytes.readFloatLE(8 + Number(bytes.readBigUInt64LE(0)));
appendFileSync('calls.txt', w + '\\n');
writeFileSync('started-' + w, '');
while (existsSync('hold-' + w)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
console.log(1 - Math.abs(w - 0.5));
`,
);

const VALUES = { a: 0.25, b: 0.4375, c: 0.625, d: 0.75 } as const;

async function workspace(name: string, names: (keyof typeof VALUES)[]): Promise<string> {
  const cwd = path.join(dir, name);
  for (const run of names) await writeSafetensorsFile(path.join(cwd, 'runs', `${run}.safetensors`), { w: { dtype: 'F32', shape: [1], values: [VALUES[run]] } });
  await mkdir(path.join(cwd, 'work'));
  return cwd;
}

const started: ChildProcess[] = [];

function startSoup(args: string[], cwd: string): { child: ChildProcess; exit: Promise<number | null>; output: () => { stdout: string; stderr: string } } {
  const child = spawn(process.execPath, [SOUP_BIN, ...args], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
  started.push(child);
  return { child, exit, output: () => ({ stdout, stderr }) };
}

async function until(what: string, condition: () => Promise<boolean> | boolean, seconds = 20): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await condition())) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const calls = async (cwd: string): Promise<string[]> => (await readFile(path.join(cwd, 'calls.txt'), 'utf8').catch(() => '')).split('\n').filter(Boolean);

/** A job as --json reports it. */
type Job = SlurmJobRecord;

describe('--executor slurm on a single-node Slurm cluster', () => {
  before(startSlurm);
  after(async () => {
    // A test that failed half-way leaves no driver behind to keep this file from ending.
    for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await stopSlurm();
  });

  it('makes the greedy soup of the fixtures with the decisions of the local run, one batch job per evaluation, recorded in --json', async () => {
    // Spaces and a % (which sbatch reads in file names) in the shared folder's name.
    const work = path.join(dir, 'greedy work 100%j');
    await mkdir(work);
    const args = ['greedy', path.join(fixtures, 'ingredients'), '--eval-cmd', `node '${tfjsScorer}' {ckpt}`, '--json'];
    const [local, cluster] = await Promise.all([
      runSoup([...args, '-o', path.join(dir, 'local-soup')]),
      runSoup([...args, '-o', path.join(dir, 'slurm-soup'), '--executor', 'slurm', '--work-dir', work]),
    ]);
    assert.equal(local.code, 0, local.stderr);
    assert.equal(cluster.code, 0, cluster.stderr);
    const [l, s] = [JSON.parse(local.stdout), JSON.parse(cluster.stdout)];
    assert.deepEqual(s.ingredients, l.ingredients);
    assert.deepEqual(s.steps, l.steps);
    assert.deepEqual(s.chosen, l.chosen);
    assert.deepEqual(
      s.steps.map((step: { accepted: boolean }) => step.accepted),
      [true, true, false, false, false, false, false],
    );
    assert.equal(s.jobs, 8, 'the eight ingredients went out at once');
    const jobs = s.slurmJobs as Job[];
    assert.ok(jobs.length >= 15, 'at least one job per evaluation');
    assert.equal(new Set(jobs.map((job) => job.id)).size, jobs.length, 'each job has its own id');
    const completed = jobs.filter((job) => job.state === 'COMPLETED');
    assert.ok(completed.length >= 15);
    for (const job of completed) {
      assert.match(job.id, /^\d+$/);
      assert.ok(job.queuedSeconds !== null && job.queuedSeconds >= 0 && job.runningSeconds !== null && job.runningSeconds >= 0, JSON.stringify(job));
      assert.equal(path.dirname(job.output), work);
    }
    assert.ok(s.evaluationsWasted >= jobs.length - 15, 'every job beyond one per decision was one scored ahead and not needed');
    assert.equal((await runSoup(['diff', path.join(dir, 'local-soup'), path.join(dir, 'slurm-soup')])).code, 0, 'the same soup');
    assert.deepEqual(await readdir(work), [], 'no candidate, job script or output file is left');
    assert.deepEqual(await squeue(), []);
  });

  it("re-submits a job whose node failed, and reports a failed command as an evaluation error naming the ingredient and the job's output file", async () => {
    const cwd = await workspace('node-fail', ['b']);
    await writeFile(path.join(cwd, `hold-${VALUES.b}`), '');
    const run = startSoup(['eval', 'runs/b.safetensors', '--eval-cmd', `node '${scorer}' {ckpt}`, '--executor', 'slurm', '--work-dir', 'work', '--json'], cwd);
    await until('the evaluation runs', () => existsSync(path.join(cwd, `started-${VALUES.b}`)));
    const node = `NodeName=${hostname().split('.')[0]}`;
    await slurm('scontrol', 'update', node, 'State=DOWN', 'Reason=soup-test');
    // The running job has failed with the node; the node comes back (an error when it already has).
    await slurm('scontrol', 'update', node, 'State=RESUME').catch(() => '');
    await rm(path.join(cwd, `hold-${VALUES.b}`));
    assert.equal(await run.exit, 0, run.output().stderr);
    const doc = JSON.parse(run.output().stdout);
    assert.deepEqual(doc.metrics, { accuracy: 1 - Math.abs(VALUES.b - 0.5) });
    assert.deepEqual(
      doc.slurmJobs.map((job: Job) => [job.state, job.attempt]),
      [
        ['NODE_FAIL', 1],
        ['COMPLETED', 2],
      ],
    );
    assert.equal((await calls(cwd)).length, 2, 'the command ran again on the re-submitted job');

    const failed = await runSoup(
      ['eval', 'runs/b.safetensors', '--eval-cmd', 'echo the GPU is gone >&2; exit 3 {ckpt}', '--executor', 'slurm', '--work-dir', 'work'],
      { cwd },
    );
    assert.equal(failed.code, 2);
    const match =
      /^soup: error: evaluation of b: `echo the GPU is gone >&2; exit 3 \{ckpt\}` exited with code 3 in Slurm job (\d+); its output is in (\S+\.out); stderr ends: the GPU is gone$/m.exec(
        failed.stderr,
      );
    assert.ok(match, failed.stderr);
    assert.equal(path.dirname(match[2]!), path.join(cwd, 'work'));
    assert.ok(existsSync(match[2]!), 'the output file is kept for the user to read');
    assert.ok(!(await readdir(path.join(cwd, 'work'))).some((file) => file.endsWith('.safetensors')), 'no candidate is left');
  });

  it("shows queued and done jobs with their ids, warns when --work-dir is this machine's temporary folder, and refuses --slurm-args that take soup's output files and --executor slurm without --eval-cmd", async () => {
    const cwd = await workspace('warn', ['a']);
    const result = await runSoup(['eval', 'runs/a.safetensors', '--eval-cmd', 'test -f {ckpt} && echo 0.5', '--executor', 'slurm'], { cwd });
    assert.equal(result.code, 0, result.stderr);
    const id = /^soup: Slurm jobs: 1 queued \((\d+)\), 0 running, 0 done$/m.exec(result.stderr)?.[1];
    assert.ok(id !== undefined, result.stderr);
    assert.match(result.stderr, /^soup: Slurm jobs: 0 queued, 0 running, 1 done$/m);
    assert.match(
      result.stderr,
      /^soup: warning: --work-dir is \/tmp, this machine's temporary folder: Slurm jobs on other nodes cannot read candidates written there; pass --work-dir on a filesystem every node shares$/m,
    );
    const output = await runSoup(
      ['eval', 'runs/a.safetensors', '--eval-cmd', 'echo 1 {ckpt}', '--executor', 'slurm', '--slurm-args', '--time=5 --output=x.log'],
      { cwd },
    );
    assert.equal(output.code, 2);
    assert.equal(
      output.stderr,
      "soup: error: --slurm-args: --output=x.log is soup's to set (it reads each job's output file, and submits one job per candidate) (leave it out; job scripts and output files go to --work-dir)\n",
    );
    const tfjs = await runSoup(['eval', path.join(fixtures, 'ingredients', 'lr1e-3-s4'), '--val', path.join(fixtures, 'data', 'val'), '--executor', 'slurm']);
    assert.equal(tfjs.code, 2);
    assert.equal(
      tfjs.stderr,
      'soup: error: --executor slurm runs --eval-cmd evaluations as Slurm jobs; TF.js and ONNX scoring (--val without --eval-cmd) runs in soup itself ' +
        '(score with --eval-cmd "python eval.py {ckpt}", or run soup itself in a job (sbatch --wrap "soup ..."))\n',
    );
  });

  it('scores soup compare and soup interpolate through Slurm with the scores of local runs, and cancels a job that outlives --eval-timeout', async () => {
    const cwd = await workspace('others', ['a', 'b', 'c', 'd']);
    const slurmArgs = ['--executor', 'slurm', '--work-dir', 'work'];
    const compare = ['compare', 'runs', '--eval-cmd', `node '${scorer}' {ckpt}`, '--json'];
    const interpolate = ['interpolate', 'runs/a.safetensors', 'runs/d.safetensors', '--eval-cmd', `node '${scorer}' {ckpt}`, '--steps', '3', '--json'];
    const [localCompare, clusterCompare, localInterpolate, clusterInterpolate] = await Promise.all([
      runSoup(compare, { cwd }),
      runSoup([...compare, ...slurmArgs], { cwd }),
      runSoup(interpolate, { cwd }),
      runSoup([...interpolate, ...slurmArgs], { cwd }),
    ]);
    for (const result of [localCompare, clusterCompare, localInterpolate, clusterInterpolate]) assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(clusterCompare.stdout).rows, JSON.parse(localCompare.stdout).rows);
    assert.ok((JSON.parse(clusterCompare.stdout).slurmJobs as Job[]).length >= 4, 'compare records its jobs');
    assert.deepEqual(JSON.parse(clusterInterpolate.stdout).points, JSON.parse(localInterpolate.stdout).points);
    const pointJobs = JSON.parse(clusterInterpolate.stdout).slurmJobs as Job[];
    assert.deepEqual(
      pointJobs.map((job) => job.state),
      ['COMPLETED', 'COMPLETED', 'COMPLETED'],
      'one job per point',
    );

    const slow = await runSoup(['eval', 'runs/a.safetensors', '--eval-cmd', 'sleep 30; echo 1 {ckpt}', ...slurmArgs, '--eval-timeout', '1'], { cwd });
    assert.equal(slow.code, 2);
    assert.match(slow.stderr, /^soup: error: evaluation of a: `sleep 30; echo 1 \{ckpt\}` timed out after 1 s in Slurm job \d+; its output is in \S+\.out$/m);
    assert.deepEqual(await squeue(), []);
  });

  it('shows running jobs with their ids; Ctrl-C cancels every job soup submitted, exits 130, and leaves squeue empty and no candidate', async () => {
    const cwd = await workspace('interrupt', ['a', 'b', 'c', 'd']);
    for (const value of Object.values(VALUES)) await writeFile(path.join(cwd, `hold-${value}`), '');
    const run = startSoup(
      ['greedy', 'runs', '--eval-cmd', `node '${scorer}' {ckpt}`, '--executor', 'slurm', '--work-dir', 'work', '-o', 'soup.safetensors'],
      cwd,
    );
    await until('four jobs run', async () => (await calls(cwd)).length === 4);
    const ids = await squeue();
    assert.equal(ids.length, 4);
    await until('progress shows them running', () =>
      run.output().stderr.includes(`soup: Slurm jobs: 0 queued, 4 running (${[...ids].sort((a, b) => Number(a) - Number(b)).join(', ')}), 0 done\n`),
    );
    run.child.kill('SIGINT');
    assert.equal(await run.exit, 130, run.output().stderr);
    assert.match(run.output().stderr, /^soup: error: interrupted by SIGINT; nothing was written$/m);
    assert.deepEqual(await squeue(), [], 'every job was cancelled');
    assert.deepEqual(await readdir(path.join(cwd, 'work')), [], 'no candidate or job file is left');
    assert.ok(!existsSync(path.join(cwd, 'soup.safetensors')));
  });

  it('resumes a soup whose driver was killed: finished jobs come from the journal and their output files, running ones are waited for, none is submitted again', async () => {
    const args = ['greedy', 'runs', '--eval-cmd', `node '${scorer}' {ckpt}`, '-o', 'soup.safetensors', '--json'];
    const whole = await workspace('whole', ['a', 'b', 'c', 'd']);
    const local = await runSoup(args, { cwd: whole });
    assert.equal(local.code, 0, local.stderr);

    const cwd = await workspace('killed', ['a', 'b', 'c', 'd']);
    for (const run of ['c', 'd'] as const) await writeFile(path.join(cwd, `hold-${VALUES[run]}`), '');
    const slurmArgs = [...args, '--executor', 'slurm', '--work-dir', 'work', '--score-cache', 'scores.jsonl'];
    const first = startSoup(slurmArgs, cwd);
    const journal = async (): Promise<string[]> => (await readFile(path.join(cwd, 'scores.jsonl'), 'utf8').catch(() => '')).split('\n').filter(Boolean);
    await until('a and b are scored and c and d run', async () => (await journal()).length === 2 && (await calls(cwd)).length === 4);
    first.child.kill('SIGKILL');
    await first.exit;
    const submitted = (await readFile(path.join(cwd, 'scores.jsonl.jobs'), 'utf8'))
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { id: string; label: string });
    const idOf = (label: string): string => submitted.find((entry) => entry.label === label)!.id;
    // c finishes while no driver runs; d is still running when the next driver starts.
    await rm(path.join(cwd, `hold-${VALUES.c}`));
    await until('c has finished', async () => !(await squeue()).includes(idOf('c')));
    const second = startSoup(slurmArgs, cwd);
    await until('the second driver has read c back from its output file', async () => (await journal()).length === 3);
    assert.ok((await squeue()).includes(idOf('d')), 'd still runs');
    await rm(path.join(cwd, `hold-${VALUES.d}`));
    assert.equal(await second.exit, 0, second.output().stderr);
    const doc = JSON.parse(second.output().stdout);
    assert.deepEqual(doc.steps, JSON.parse(local.stdout).steps);
    assert.deepEqual(doc.chosen, JSON.parse(local.stdout).chosen);
    const reattached = (doc.slurmJobs as Job[]).filter((job) => job.reattached === true).map((job) => [job.label, job.id]);
    assert.deepEqual(reattached.sort(), [
      ['c', idOf('c')],
      ['d', idOf('d')],
    ]);
    const resubmitted = (doc.slurmJobs as Job[]).filter((job) => job.reattached !== true && !job.label.includes('in soup'));
    assert.deepEqual(resubmitted, [], 'no ingredient was submitted again');
    assert.equal(doc.evaluationsFromCache, 2, 'a and b');
    assert.equal(
      (await runSoup(['diff', path.join(cwd, 'soup.safetensors'), path.join(whole, 'soup.safetensors')])).code,
      0,
      'the soup of the uninterrupted local run',
    );
    assert.deepEqual(await readdir(path.join(cwd, 'work')), [], 'the candidates of the first driver are removed too');
    assert.deepEqual(await squeue(), []);

    // A third run finds every score in the journal, those scored ahead included, and submits nothing.
    const third = await runSoup([...slurmArgs, '--force'], { cwd });
    assert.equal(third.code, 0, third.stderr);
    const again = JSON.parse(third.stdout);
    assert.deepEqual(again.slurmJobs, []);
    assert.equal(again.evaluationsFromCache, again.evaluations, 'every evaluation came from the journal, and no more');
  });
});
