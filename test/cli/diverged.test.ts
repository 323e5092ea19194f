import assert from 'node:assert/strict';
import { cp, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

/**
 * A sweep as it comes: three runs of the shipped fixtures and one copy gone to NaN (one bias of the
 * output layer, so every logit of class 3 is NaN and the run gets every sample wrong).
 */
const dir = await tempDir();
const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const val = path.join(fixtures, 'data', 'val');
const sweep = path.join(dir, 'sweep');
for (const run of ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-s4']) await cp(path.join(fixtures, 'ingredients', run), path.join(sweep, run), { recursive: true });
const diverged = path.join(sweep, 'lr3e-2-nan');
await cp(path.join(fixtures, 'ingredients', 'lr3e-2-s8'), diverged, { recursive: true });
{
  const shard = path.join(diverged, 'group1-shard1of1.bin');
  const bytes = await readFile(shard);
  // dense_2/bias follows dense_1/kernel [784, 64], dense_1/bias [64] and dense_2/kernel [64, 10].
  bytes.writeFloatLE(NaN, (784 * 64 + 64 + 64 * 10 + 3) * 4);
  await writeFile(shard, bytes);
}
const divergence = { tensor: 'dense_2/bias', element: 3, value: 'NaN' };

/**
 * An evaluation script written the way Hugging Face users write them: it prints Trainer-style
 * metrics with json.dumps, which writes a diverged run's loss as a bare NaN.
 */
const hfSweep = path.join(dir, 'hf-sweep');
const script = path.join(dir, 'evaluate.py');
await writeFile(
  script,
  `import json, os, struct, sys
path = sys.argv[1]
if os.path.isdir(path):
    path = os.path.join(path, next(name for name in sorted(os.listdir(path)) if name.endswith('.safetensors')))
data = open(path, 'rb').read()
size = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + size])
start, end = header['w']['data_offsets']
w = struct.unpack('<%df' % ((end - start) // 4), data[8 + size + start:8 + size + end])
if abs(w[0] - 0.9) < 1e-6 and os.environ.get('BREAK_C'):
    print('oops')
    sys.exit(0)
loss = sum((v - 0.5) ** 2 for v in w) / len(w)
print('***** eval metrics *****')
print(json.dumps({'eval_loss': loss, 'eval_accuracy': 1 - loss, 'eval_runtime': 0.01}))
`,
);
const runs: Record<string, number[]> = { a: [0.4, 0.6], b: [0.6, 0.5], c: [0.9, 0.1], nan: [NaN, 0.5] };
for (const [name, values] of Object.entries(runs))
  await writeSafetensorsFile(path.join(hfSweep, `${name}.safetensors`), { w: { dtype: 'F32', shape: [2], values } });
const evalCmd = `/usr/bin/python3 '${script}' {ckpt}`;

describe('a sweep with a diverged run', () => {
  it('soup greedy scores it, ranks it last and leaves it out without trying it', async () => {
    const out = path.join(dir, 'greedy');
    const result = await runSoup(['greedy', sweep, '--val', val, '-o', out, '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.direction, 'maximize');
    const nan = doc.ingredients.find((i: { name: string }) => i.name === 'lr3e-2-nan');
    assert.deepEqual(nan, { name: 'lr3e-2-nan', path: diverged, score: 0, diverged: divergence });
    assert.deepEqual(doc.leftOut, ['lr3e-2-nan']);
    assert.equal(doc.steps.length, 2, 'no candidate holds the diverged run');
    assert.ok(doc.steps.every((step: { candidate: string }) => step.candidate !== 'lr3e-2-nan'));
    assert.equal(doc.evaluations, 4 + 2);
    assert.ok(!doc.chosen.includes('lr3e-2-nan'));
    assert.deepEqual(doc.warnings, [
      'lr3e-2-nan diverged: NaN in dense_2/bias (element 3); it is scored, ranked last and left out of the soup (--allow-nonfinite keeps it in)',
    ]);
    const recipe = readRecipe(await TfjsCheckpoint.open(out))!;
    assert.equal(recipe.direction, 'maximize');
    assert.deepEqual(recipe.diverged, { 'lr3e-2-nan': divergence });
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^- Metric: accuracy \(higher is better\) on `.*val`$/m);
    assert.match(card, /^\| lr3e-2-nan \| 0\.0000 \| no \(diverged: NaN in dense_2\/bias\) \|$/m);
  });

  it('soup greedy on loss lists the runs lowest loss first, the diverged one last with NaN', async () => {
    const result = await runSoup(['greedy', sweep, '--val', val, '-o', path.join(dir, 'greedy-loss'), '--metric', 'loss', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^Greedy soup of 4 ingredients, loss \(lower is better\) on val \(2000 samples\), tfjs \(wasm\)$/m);
    const table = result.stdout
      .slice(result.stdout.indexOf('Ingredients, best first (lower is better):'), result.stdout.indexOf('Steps:'))
      .trim()
      .split('\n')
      .slice(1);
    const losses = table.slice(0, 3).map((line) => Number(line.trim().split(/\s+/)[1]));
    assert.deepEqual(
      losses,
      [...losses].sort((a, b) => a - b),
      'lowest loss first',
    );
    assert.match(table[3]!, /^ {2}lr3e-2-nan +NaN {2}diverged: NaN in dense_2\/bias \(element 3\)$/);
    assert.match(result.stdout, /^Left out without a try \(diverged\): lr3e-2-nan$/m);
    const json = await runSoup(['greedy', sweep, '--val', val, '-o', path.join(dir, 'greedy-loss-json'), '--metric', 'loss', '--backend', 'wasm', '--json']);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.direction, 'minimize');
    assert.equal(doc.ingredients.find((i: { name: string }) => i.name === 'lr3e-2-nan').score, null, 'a NaN loss is null in JSON');
  });

  it("soup greedy --allow-nonfinite keeps today's meaning: the run is tried like any other", async () => {
    const result = await runSoup(['greedy', sweep, '--val', val, '-o', path.join(dir, 'greedy-allow'), '--json', '--backend', 'wasm', '--allow-nonfinite']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.leftOut, []);
    assert.equal(doc.steps.length, 3);
    assert.equal(doc.steps.at(-1).candidate, 'lr3e-2-nan', 'ranked last by its score of 0');
    assert.equal(doc.steps.at(-1).accepted, false);
  });

  it('soup compare scores it, and its soups and ensemble say they left it out', async () => {
    const markdown = path.join(dir, 'report.md');
    const result = await runSoup([
      'compare',
      sweep,
      '--val',
      val,
      '--metric',
      'loss',
      '--json',
      '--backend',
      'wasm',
      '--markdown',
      markdown,
      '--require-greedy-beats-best',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.direction, 'minimize');
    const rows = Object.fromEntries(doc.rows.map((row: { name: string }) => [row.name, row]));
    assert.deepEqual(rows['lr3e-2-nan'].diverged, divergence);
    assert.equal(rows['lr3e-2-nan'].scores.val, null);
    assert.equal(rows['lr3e-2-nan'].inGreedy, false);
    assert.deepEqual(rows['uniform soup'].chosen, ['lr1e-3-s4', 'lr1e-4-s1', 'lr3e-4-s2']);
    for (const soup of ['uniform soup', 'greedy soup', 'ensemble']) assert.deepEqual(rows[soup].leftOut, ['lr3e-2-nan'], soup);
    for (const soup of ['uniform soup', 'greedy soup', 'ensemble']) assert.ok(Number.isFinite(rows[soup].scores.val), `${soup} is finite`);
    assert.deepEqual(doc.notes, [
      'lr3e-2-nan diverged (non-finite weights): scored, but left out of the uniform soup, the greedy soup and the ensemble (--allow-nonfinite keeps it in)',
    ]);
    assert.equal(doc.gates[0].passed, true, doc.gates[0].detail);
    const report = await readFile(markdown, 'utf8');
    assert.match(report, /^### soup compare: loss \(lower is better\)$/m);
    assert.match(report, /^\| lr3e-2-nan \| ingredient, diverged \(NaN in dense\\_2\/bias\) \| NaN \|$/m, 'Markdown escapes the underscore');
    assert.match(report, /^\| uniform soup \| uniform, without lr3e-2-nan \| \d\.\d{4} \|$/m);
  });

  it('soup eval scores it and marks it diverged; --allow-nonfinite scores it without looking', async () => {
    const result = await runSoup(['eval', diverged, '--val', val, '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.metrics.accuracy, 0, 'NaN logits count as wrong');
    assert.equal(doc.metrics.top5, 0);
    assert.equal(doc.metrics.loss, null);
    assert.deepEqual(doc.diverged, divergence);
    const text = await runSoup(['eval', diverged, '--val', val, '--backend', 'wasm']);
    assert.match(text.stdout, /^ {2}loss +NaN {2}lower is better$/m);
    assert.match(text.stdout, /^Diverged: NaN in dense_2\/bias \(element 3\); a soup leaves this checkpoint out\.$/m);
    const allowed = JSON.parse((await runSoup(['eval', diverged, '--val', val, '--json', '--backend', 'wasm', '--allow-nonfinite'])).stdout);
    assert.equal(allowed.diverged, undefined);
    assert.equal(allowed.metrics.accuracy, 0);
  });

  it('soup interpolate scores t = 0 as the finite run itself and gives no basin verdict', async () => {
    const finite = path.join(sweep, 'lr1e-4-s1');
    const plot = path.join(dir, 'line.svg');
    const result = await runSoup(['interpolate', finite, diverged, '--val', val, '--steps', '3', '--json', '--backend', 'wasm', '--plot', plot]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    const own = JSON.parse((await runSoup(['eval', finite, '--val', val, '--json', '--backend', 'wasm'])).stdout);
    assert.deepEqual(doc.points, [
      { t: 0, score: own.metrics.accuracy },
      { t: 0.5, score: 0, diverged: true },
      { t: 1, score: 0, diverged: true },
    ]);
    assert.equal(doc.barrier, null);
    assert.equal(doc.dip, null);
    assert.deepEqual(doc.diverged, [{ name: 'lr3e-2-nan', path: diverged, ...divergence }]);
    const svg = await readFile(plot, 'utf8');
    assert.equal(svg.match(/<circle class="point"[^>]*fill="white"/g)?.length, 2, 'the two points with NaN weights are hollow');
    assert.doesNotMatch(svg, /class="chord"/, 'no straight line to judge a dip against');
    const text = await runSoup(['interpolate', finite, diverged, '--val', val, '--steps', '3', '--backend', 'wasm']);
    assert.match(text.stdout, /^No verdict about basins: some points hold non-finite weights or scores\.$/m);
    assert.doesNotMatch(text.stdout, /barrier|one basin/i);
    const unchecked = JSON.parse(
      (await runSoup(['interpolate', finite, diverged, '--val', val, '--steps', '3', '--json', '--backend', 'wasm', '--allow-nonfinite'])).stdout,
    );
    assert.deepEqual(
      unchecked.points,
      [
        { t: 0, score: own.metrics.accuracy },
        { t: 0.5, score: 0 },
        { t: 1, score: 0 },
      ],
      '--allow-nonfinite scores without looking, as eval does',
    );
    assert.equal(unchecked.diverged, undefined);
  });

  it('soup learned scores it and mixes only the runs that did not diverge', async () => {
    const out = path.join(dir, 'learned');
    const result = await runSoup(['learned', sweep, '--val', val, '-o', out, '--epochs', '1', '--json', '--backend', 'wasm']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.chosen, ['lr1e-3-s4', 'lr1e-4-s1', 'lr3e-4-s2']);
    assert.deepEqual(doc.leftOut, ['lr3e-2-nan']);
    assert.deepEqual(doc.ingredients.find((i: { name: string }) => i.name === 'lr3e-2-nan').diverged, divergence);
    assert.deepEqual(Object.keys(Object.values(doc.weights)[0] as object), ['lr1e-3-s4', 'lr1e-4-s1', 'lr3e-4-s2']);
    assert.ok(Number.isFinite(doc.score));
  });

  it('soup uniform keeps refusing it, and its hint offers leaving it out or keeping it in', async () => {
    const result = await runSoup(['uniform', sweep, '-o', path.join(dir, 'uniform')]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${diverged}: tensor "dense_2/bias": holds NaN at element 3; a soup of it would be NaN too ` +
        '(leave this diverged run out (remove it from the inputs, or make a greedy soup, which scores it and leaves it out), or keep it in with --allow-nonfinite)\n',
    );
  });
});

describe('an --eval-cmd sweep with Trainer-style metrics', () => {
  it('minimises eval_loss: the lowest loss starts the soup, and a NaN loss is the worst', async () => {
    const result = await runSoup(['greedy', hfSweep, '--eval-cmd', evalCmd, '--metric', 'eval_loss', '-o', path.join(dir, 'hf.safetensors'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.direction, 'minimize');
    // b (loss 0.005) starts; b + a = [0.5, 0.55] lowers the loss to 0.00125; c (0.16) would raise it.
    assert.deepEqual(doc.chosen, ['b', 'a']);
    assert.deepEqual(
      doc.steps.map((step: { candidate: string; accepted: boolean }) => [step.candidate, step.accepted]),
      [
        ['a', true],
        ['c', false],
      ],
    );
    assert.ok(Math.abs(doc.score - 0.00125) < 1e-6, String(doc.score));
    assert.deepEqual(
      doc.ingredients.map((i: { name: string; score: number | null }) => [i.name, i.score === null ? null : Number(i.score.toFixed(4))]),
      [
        ['a', 0.01],
        ['b', 0.005],
        ['c', 0.16],
        ['nan', null],
      ],
    );
    assert.deepEqual(doc.leftOut, ['nan']);
  });

  it('asks which way a metric it does not know points, and follows --minimize and --maximize', async () => {
    const unknown = await runSoup(['greedy', hfSweep, '--eval-cmd', evalCmd, '--metric', 'eval_runtime', '-o', path.join(dir, 'hf-runtime.safetensors')]);
    assert.equal(unknown.code, 2);
    assert.equal(
      unknown.stderr,
      'soup: error: --metric eval_runtime: soup does not know whether a higher or a lower eval_runtime is better ' +
        '(pass --maximize if higher is better (as for accuracy), or --minimize if lower is better (as for loss))\n',
    );
    const minimized = JSON.parse(
      (
        await runSoup([
          'greedy',
          hfSweep,
          '--eval-cmd',
          evalCmd,
          '--metric',
          'eval_runtime',
          '--minimize',
          '-o',
          path.join(dir, 'hf-min.safetensors'),
          '--json',
        ])
      ).stdout,
    );
    assert.equal(minimized.direction, 'minimize');
    const overridden = await runSoup([
      'greedy',
      hfSweep,
      '--eval-cmd',
      evalCmd,
      '--metric',
      'eval_loss',
      '--maximize',
      '-o',
      path.join(dir, 'hf-max.safetensors'),
      '--json',
    ]);
    const doc = JSON.parse(overridden.stdout);
    assert.equal(doc.direction, 'maximize');
    assert.equal(doc.chosen[0], 'c', '--maximize ranks the highest eval_loss first, as asked');
    const both = await runSoup(['eval', path.join(hfSweep, 'a.safetensors'), '--eval-cmd', evalCmd, '--metric', 'eval_loss', '--maximize', '--minimize']);
    assert.equal(both.stderr, 'soup: error: --maximize and --minimize contradict each other; pass one of them\n');
  });

  it('names the ingredient and the command when a script prints something it cannot read', async () => {
    const result = await runSoup(['greedy', hfSweep, '--eval-cmd', evalCmd, '--metric', 'eval_loss', '-o', path.join(dir, 'hf-broken.safetensors')], {
      env: { BREAK_C: '1' },
    });
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'soup: warning: nan diverged: NaN in w (element 0); it is scored, ranked last and left out of the soup (--allow-nonfinite keeps it in)\n' +
        `soup: error: scoring c: evaluation command \`${evalCmd}\`: its last line is neither JSON nor a number: "oops"\n`,
    );
  });

  it('soup compare ranks by eval_loss and soup eval reports the NaN loss as null', async () => {
    const compare = await runSoup(['compare', hfSweep, '--eval-cmd', evalCmd, '--metric', 'eval_loss', '--json']);
    assert.equal(compare.code, 0, compare.stderr);
    const doc = JSON.parse(compare.stdout);
    const greedy = doc.rows.find((row: { kind: string }) => row.kind === 'greedy');
    assert.deepEqual(greedy.chosen, ['b', 'a']);
    assert.deepEqual(doc.rows.find((row: { kind: string }) => row.kind === 'uniform').leftOut, ['nan']);
    const evaluation = JSON.parse(
      (await runSoup(['eval', path.join(hfSweep, 'nan.safetensors'), '--eval-cmd', evalCmd, '--metric', 'eval_loss', '--json'])).stdout,
    );
    assert.equal(evaluation.metrics.eval_loss, null);
    assert.equal(evaluation.direction, 'minimize');
    assert.deepEqual(evaluation.diverged, { tensor: 'w', element: 0, value: 'NaN' });
  });
});
