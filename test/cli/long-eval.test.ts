import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

/**
 * Scores a one-float safetensors candidate as 1 - |w - 0.5|, and appends a line to calls.txt in its
 * working folder, so tests count the evaluations really run. With a barrier folder, it waits until
 * two evaluations have started: it fails unless they run at the same time.
 */
const scorer = path.join(dir, 'score.mjs');
await writeFile(
  scorer,
  `import { appendFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
const [ckpt, barrier] = process.argv.slice(2);
appendFileSync('calls.txt', 'call\\n');
if (barrier !== undefined) {
  writeFileSync(barrier + '/' + process.pid, '');
  const until = Date.now() + 20000;
  while (readdirSync(barrier).length < 2) {
    if (Date.now() > until) { console.error('no other evaluation ran at the same time'); process.exit(1); }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}
const bytes = readFileSync(ckpt);
const w = bytes.readFloatLE(8 + Number(bytes.readBigUInt64LE(0)));
if (process.env.FAIL_AT !== undefined && Math.abs(w - Number(process.env.FAIL_AT)) < 1e-6) { console.error('the node went away'); process.exit(1); }
console.log(1 - Math.abs(w - 0.5));
`,
);

const VALUES = { a: 0.25, b: 0.4375, c: 0.625, d: 0.75 } as const;

/** A working folder holding `runs/` with the named one-float ingredients. */
async function workspace(name: string, names: (keyof typeof VALUES)[]): Promise<string> {
  const cwd = path.join(dir, name);
  for (const run of names) await writeSafetensorsFile(path.join(cwd, 'runs', `${run}.safetensors`), { w: { dtype: 'F32', shape: [1], values: [VALUES[run]] } });
  return cwd;
}

async function calls(cwd: string): Promise<number> {
  const text = await readFile(path.join(cwd, 'calls.txt'), 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line !== '').length;
}

const greedyArgs = (extra: string[] = []) => [
  'greedy',
  'runs',
  '--eval-cmd',
  `node '${scorer}' {ckpt}`,
  '-o',
  'soup.safetensors',
  '--force',
  '--json',
  ...extra,
];

describe('long evaluations', () => {
  it('runs --eval-cmd evaluations of the ingredients at the same time with --jobs, with the decisions of a serial run', async () => {
    const cwd = await workspace('parallel', ['a', 'b', 'c', 'd']);
    const barrier = path.join(cwd, 'barrier');
    await mkdir(barrier);
    const parallel = await runSoup(
      ['greedy', 'runs', '--eval-cmd', `node '${scorer}' {ckpt} '${barrier}'`, '-o', 'parallel.safetensors', '--json', '--jobs', '2'],
      { cwd },
    );
    assert.equal(parallel.code, 0, parallel.stderr);
    const serial = await runSoup(['greedy', 'runs', '--eval-cmd', `node '${scorer}' {ckpt}`, '-o', 'serial.safetensors', '--json'], { cwd });
    assert.equal(serial.code, 0, serial.stderr);
    const [p, s] = [JSON.parse(parallel.stdout), JSON.parse(serial.stdout)];
    assert.equal(p.jobs, 2);
    assert.equal(s.jobs, 1);
    assert.ok((await readdir(barrier)).length >= 2, 'two evaluations met at the barrier');
    assert.deepEqual(
      p.ingredients.map((i: { name: string; score: number }) => [i.name, i.score]),
      s.ingredients.map((i: { name: string; score: number }) => [i.name, i.score]),
    );
    assert.deepEqual(p.steps, s.steps);
    assert.deepEqual(p.chosen, ['b', 'c']);
    assert.deepEqual(p.chosen, s.chosen);
    assert.equal((await runSoup(['diff', path.join(cwd, 'parallel.safetensors'), path.join(cwd, 'serial.safetensors')])).code, 0, 'the same soup');
  });

  it("runs soup compare's --eval-cmd evaluations of the ingredients at the same time with --jobs, with the scores of a serial run", async () => {
    const cwd = await workspace('compare-parallel', ['a', 'b', 'c', 'd']);
    const barrier = path.join(cwd, 'barrier');
    await mkdir(barrier);
    const parallel = await runSoup(['compare', 'runs', '--eval-cmd', `node '${scorer}' {ckpt} '${barrier}'`, '--jobs', '2', '--json'], { cwd });
    assert.equal(parallel.code, 0, parallel.stderr);
    assert.ok((await readdir(barrier)).length >= 2, 'two evaluations met at the barrier');
    const serial = await runSoup(['compare', 'runs', '--eval-cmd', `node '${scorer}' {ckpt}`, '--json'], { cwd });
    assert.equal(serial.code, 0, serial.stderr);
    const rows = (doc: string) => (JSON.parse(doc) as { rows: { name: string; scores: Record<string, number> }[] }).rows.map((row) => [row.name, row.scores]);
    assert.deepEqual(rows(parallel.stdout), rows(serial.stdout));
    assert.deepEqual(
      rows(serial.stdout)
        .slice(0, 4)
        .map(([name]) => name),
      ['a', 'b', 'c', 'd'],
    );
  });

  it('writes candidates into --work-dir and removes them, and refuses a --work-dir that does not exist', async () => {
    const cwd = await workspace('workdir', ['a', 'b']);
    const work = path.join(cwd, 'shared tmp');
    await mkdir(work);
    const seen = path.join(cwd, 'seen.txt');
    const result = await runSoup(['greedy', 'runs', '--eval-cmd', `echo {ckpt} >> '${seen}'; echo 0.5`, '-o', 'soup.safetensors', '--work-dir', work], { cwd });
    assert.equal(result.code, 0, result.stderr);
    const paths = (await readFile(seen, 'utf8')).trim().split('\n');
    assert.equal(paths.length, 3);
    for (const candidate of paths) assert.equal(path.dirname(candidate), work);
    assert.deepEqual(await readdir(work), []);
    const missing = await runSoup(['greedy', 'runs', '--eval-cmd', 'echo 1 {ckpt}', '-o', 'x.safetensors', '--work-dir', 'nowhere'], { cwd });
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      'soup: error: --work-dir nowhere does not exist (create it, on storage that the evaluation command (and the cluster nodes it runs on) can read)\n',
    );
  });

  it('scores nothing again from --score-cache: a re-run calls the command zero times and writes the same bytes', async () => {
    const cwd = await workspace('journal', ['a', 'b', 'c']);
    const first = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd });
    assert.equal(first.code, 0, first.stderr);
    assert.equal(JSON.parse(first.stdout).evaluationsFromCache, 0);
    assert.equal(await calls(cwd), 5, 'three ingredients and two steps');
    const soup = await readFile(path.join(cwd, 'soup.safetensors'));
    assert.equal((await readFile(path.join(cwd, 'scores.jsonl'), 'utf8')).split('\n').filter(Boolean).length, 5);

    const again = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await calls(cwd), 5, 'the command was not called again');
    const doc = JSON.parse(again.stdout);
    assert.equal(doc.evaluations, 5);
    assert.equal(doc.evaluationsFromCache, 5);
    assert.deepEqual(doc.steps, JSON.parse(first.stdout).steps);
    assert.deepEqual(await readFile(path.join(cwd, 'soup.safetensors')), soup, 'byte-identical soup');

    const human = await runSoup(
      greedyArgs(['--score-cache', 'scores.jsonl']).filter((arg) => arg !== '--json'),
      { cwd },
    );
    assert.match(human.stdout, /^Score cache: 5 of 5 evaluations came from scores\.jsonl; 0 were run and added to it\.$/m);
  });

  it('with one more ingredient, calls the command only for the new candidates', async () => {
    const cwd = await workspace('grown', ['a', 'b', 'c']);
    assert.equal((await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd })).code, 0);
    await writeSafetensorsFile(path.join(cwd, 'runs', 'd.safetensors'), { w: { dtype: 'F32', shape: [1], values: [VALUES.d] } });
    const grown = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd });
    assert.equal(grown.code, 0, grown.stderr);
    const doc = JSON.parse(grown.stdout);
    assert.equal(await calls(cwd), 5 + 2, 'd on its own, and the soup b + c + d');
    assert.equal(doc.evaluations, 7);
    assert.equal(doc.evaluationsFromCache, 5);
    assert.deepEqual(
      doc.steps.map((step: { candidate: string }) => step.candidate),
      ['c', 'a', 'd'],
    );
  });

  it('resumes an interrupted greedy soup where it stopped, with the soup an uninterrupted run writes', async () => {
    const whole = await workspace('whole', ['a', 'b', 'c']);
    assert.equal((await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd: whole })).code, 0);
    const broken = await workspace('broken', ['a', 'b', 'c']);
    // The first step's candidate, the mean of b and c, fails: the run stops after three scores.
    const failed = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd: broken, env: { FAIL_AT: String((VALUES.b + VALUES.c) / 2) } });
    assert.equal(failed.code, 2);
    assert.match(failed.stderr, /the node went away/);
    assert.equal(await calls(broken), 4);
    const resumed = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd: broken });
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(await calls(broken), 6, 'the ingredients are not scored again, the two steps are');
    assert.equal(JSON.parse(resumed.stdout).evaluationsFromCache, 3);
    assert.deepEqual(await readFile(path.join(broken, 'soup.safetensors')), await readFile(path.join(whole, 'soup.safetensors')));
  });

  it('keys TF.js scores by model and data, so a re-run on the same validation data scores nothing, and other data scores again', async () => {
    const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
    const cwd = path.join(dir, 'tfjs-journal');
    await mkdir(cwd);
    const args = (val: string) => [
      'greedy',
      path.join(fixtures, 'ingredients'),
      '--val',
      path.join(fixtures, 'data', val),
      '-o',
      'soup',
      '--force',
      '--json',
      '--backend',
      'wasm',
      '--jobs',
      '1',
      '--score-cache',
      'scores.jsonl',
    ];
    const first = JSON.parse((await runSoup(args('val'), { cwd })).stdout);
    const again = JSON.parse((await runSoup(args('val'), { cwd })).stdout);
    assert.equal(first.evaluationsFromCache, 0);
    assert.equal(again.evaluationsFromCache, again.evaluations, 'every score, stopped-early ones included, came from the journal');
    assert.deepEqual(again.steps, first.steps);
    assert.deepEqual(again.chosen, first.chosen);
    const other = JSON.parse((await runSoup(args('test.npz'), { cwd })).stdout);
    assert.equal(other.evaluationsFromCache, 0, 'another data set is another evaluator');
  });

  it('skips a torn last line of the journal with a warning and scores that candidate again', async () => {
    const cwd = await workspace('torn', ['a', 'b', 'c']);
    assert.equal((await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd })).code, 0);
    const journal = path.join(cwd, 'scores.jsonl');
    const lines = (await readFile(journal, 'utf8')).split('\n').filter(Boolean);
    await writeFile(journal, `${lines.slice(0, -1).join('\n')}\n${lines.at(-1)!.slice(0, 40)}`);
    const result = await runSoup(greedyArgs(['--score-cache', 'scores.jsonl']), { cwd });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stderr,
      'soup: warning: scores.jsonl: the last line is incomplete (a run stopped while writing it); it is ignored and that candidate is scored again\n',
    );
    assert.equal(await calls(cwd), 6);
    assert.equal(JSON.parse(result.stdout).evaluationsFromCache, 4);
    assert.deepEqual((await readFile(journal, 'utf8')).split('\n').filter(Boolean).length, 5, 'the torn line is replaced by a whole one');
  });

  it('Ctrl-C with parallel commands stops every command and its children, and leaves no candidate checkpoint', async () => {
    const cwd = await workspace('interrupt', ['a', 'b', 'c', 'd']);
    const work = path.join(cwd, 'work');
    const pids = path.join(cwd, 'pids');
    await mkdir(work);
    await mkdir(pids);
    // Each evaluation records its own pid and starts a child that would outlive it if left alone.
    const hang = path.join(cwd, 'hang.sh');
    await writeFile(hang, `echo $$ > '${pids}'/$$\nsleep 60 &\necho $! > '${pids}'/$!\nwait\n`);
    const child = spawn(
      process.execPath,
      [SOUP_BIN, 'greedy', 'runs', '--eval-cmd', `sh '${hang}' {ckpt}`, '-o', 'soup.safetensors', '--jobs', '3', '--work-dir', work],
      {
        cwd,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
      },
    );
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exit = new Promise<number | null>((resolve) => child.on('close', resolve));
    const deadline = Date.now() + 20_000;
    while ((await readdir(pids)).length < 6) {
      assert.ok(Date.now() < deadline && child.exitCode === null, `three evaluations and their children should start (stderr: ${stderr})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal((await readdir(work)).length, 3, 'three candidates at once');
    child.kill('SIGINT');
    assert.equal(await exit, 130, stderr);
    assert.match(stderr, /^soup: error: interrupted by SIGINT; nothing was written$/m);
    assert.deepEqual(await readdir(work), [], 'no candidate checkpoint is left');
    // A process killed a moment ago may linger as a zombie until it is reaped: that one is not running.
    const running = (pid: number): boolean => {
      try {
        return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] !== 'Z';
      } catch {
        return false;
      }
    };
    const left = (await readdir(pids)).map(Number).filter(running);
    assert.deepEqual(left, [], 'no command or child of one is still running');
    assert.ok(!(await readdir(cwd)).includes('soup.safetensors'));
  });
});
