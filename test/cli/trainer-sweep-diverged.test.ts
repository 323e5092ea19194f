/**
 * Issue 20 end to end: the Trainer-layout sweep of fixtures/trainer-sweep (made by
 * scripts/make-trainer-sweep.py), whose run ft-lr5e0-s4 went to NaN, scored both ways a user scores
 * it: ONNX Runtime on the sweep's export (--model model.onnx --val val.npz), and the sweep's own
 * evaluation script (--eval-cmd "python3 eval.py {ckpt} {data}"), which needs a model folder and
 * prints the Trainer's eval_loss and eval_accuracy, or a bare NaN for the diverged run.
 */
import assert from 'node:assert/strict';
import { cp, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';
import { SYSTEM_PYTHON } from '../helpers/torch-python.js';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const sweep = path.join(fixtures, 'trainer-sweep');
const run = (name: string, ...rest: string[]) => path.join(sweep, name, ...rest);
const runs = ['ft-lr1e-2-s2', 'ft-lr3e-2-s3', 'ft-lr5e-2-s1', 'ft-lr5e0-s4'].map((name) => run(name));
const onnx = ['--model', path.join(sweep, 'model.onnx'), '--val', path.join(sweep, 'val.npz')];
const evalCmd = `${SYSTEM_PYTHON} ${path.join(sweep, 'eval.py')} {ckpt} {data}`;
const script = ['--eval-cmd', evalCmd, '--val', path.join(sweep, 'val.npz')];
const dir = await tempDir();

const NAN_RUN = 'ft-lr5e0-s4';
const divergence = { tensor: 'fc1.weight', element: 0, value: 'NaN' };
const divergedWarning = (name: string, leftOutOf = 'the soup') =>
  `soup: warning: ${name} diverged: NaN in fc1.weight (element 0); it is scored, ranked last and left out of ${leftOutOf} (--allow-nonfinite keeps it in)\n`;
const finalWarning = `soup: warning: ${run('ft-lr5e-2-s1')} holds final weights and checkpoint-10, checkpoint-20, checkpoint-30: using the final weights (--checkpoints last, best or all picks checkpoints instead)\n`;
const sweepWarning = `soup: warning: ${sweep}: every checkpoint of runs ft-lr1e-2-s2, ft-lr3e-2-s3, ft-lr5e0-s4 is an ingredient (6 in all; --checkpoints last or best takes one per run)\n`;

interface Ingredient {
  name: string;
  score: number | null;
  diverged?: typeof divergence;
}
const scores = (doc: { ingredients: Ingredient[] }) =>
  doc.ingredients.map((ingredient) => [ingredient.name, ingredient.score, ingredient.diverged?.tensor ?? null]);

describe('greedy over a Trainer sweep with a diverged run', () => {
  it('scores the NaN run on the ONNX export, marks it diverged, ranks it last and leaves it out without a candidate that holds it', async () => {
    const out = path.join(dir, 'greedy-onnx.safetensors');
    const result = await runSoup(['greedy', sweep, ...onnx, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, finalWarning + sweepWarning + divergedWarning(`${NAN_RUN}/checkpoint-10`) + divergedWarning(`${NAN_RUN}/checkpoint-20`));
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.direction, 'maximize');
    assert.deepEqual(scores(doc), [
      ['ft-lr1e-2-s2/checkpoint-10', 0.7533333333333333, null],
      ['ft-lr1e-2-s2/checkpoint-20', 0.76, null],
      ['ft-lr3e-2-s3/checkpoint-10', 0.7666666666666667, null],
      ['ft-lr3e-2-s3/checkpoint-20', 0.78, null],
      // NaN logits count as wrong: accuracy 0, not "argmax 0".
      [`${NAN_RUN}/checkpoint-10`, 0, 'fc1.weight'],
      [`${NAN_RUN}/checkpoint-20`, 0, 'fc1.weight'],
      ['ft-lr5e-2-s1', 0.73, null],
    ]);
    assert.deepEqual(doc.ingredients[4].diverged, divergence);
    assert.deepEqual(doc.leftOut, [`${NAN_RUN}/checkpoint-10`, `${NAN_RUN}/checkpoint-20`]);
    assert.deepEqual(
      doc.steps.map((step: { candidate: string; accepted: boolean }) => [step.candidate, step.accepted]),
      [
        ['ft-lr3e-2-s3/checkpoint-10', false],
        ['ft-lr1e-2-s2/checkpoint-20', true],
        ['ft-lr1e-2-s2/checkpoint-10', true],
        ['ft-lr5e-2-s1', false],
      ],
    );
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-10']);
    assert.equal(doc.score, 0.79);
    // 7 ingredients and 4 candidates: none was built with the diverged run in it.
    assert.equal(doc.evaluations, 11);
    const soup = await SafetensorsFile.open(out);
    const recipe = readRecipe(soup)!;
    await soup.close();
    assert.deepEqual(recipe.diverged, { [`${NAN_RUN}/checkpoint-10`]: divergence, [`${NAN_RUN}/checkpoint-20`]: divergence });
    for (const tensor of ['fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias']) {
      const soupFile = await SafetensorsFile.open(out);
      const values = await soupFile.readFloats(tensor);
      await soupFile.close();
      assert.ok(values.every(Number.isFinite), `${tensor} of the soup is finite`);
    }
  });

  it('prints the ranking with the diverged runs last and the runs it left out without a try', async () => {
    const result = await runSoup(['greedy', ...runs, '--checkpoints', 'last', ...onnx, '-o', path.join(dir, 'greedy-text.safetensors')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^Ingredients, best first \(higher is better\):\n {2}ft-lr3e-2-s3\/checkpoint-20 {2}0\.7800\n {2}ft-lr1e-2-s2\/checkpoint-20 {2}0\.7600\n {2}ft-lr5e-2-s1\/checkpoint-30 {2}0\.7300\n {2}ft-lr5e0-s4\/checkpoint-20 {3}0\.0000 {2}diverged: NaN in fc1\.weight \(element 0\)\n/m,
    );
    assert.match(result.stdout, /^Left out without a try \(diverged\): ft-lr5e0-s4\/checkpoint-20$/m);
    assert.match(result.stdout, /^Chosen: ft-lr3e-2-s3\/checkpoint-20, ft-lr1e-2-s2\/checkpoint-20 \(2 of 4\)$/m);
  });

  it('minimises eval_loss from the evaluation script, which gets a folder, and takes its bare NaN as the worst score', async () => {
    const out = path.join(dir, 'greedy-loss');
    const result = await runSoup(['greedy', ...runs, '--checkpoints', 'last', ...script, '--metric', 'eval_loss', '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stderr, new RegExp(`^${divergedWarning(`${NAN_RUN}/checkpoint-20`).trimEnd().replace(/[()]/g, '\\$&')}$`, 'm'));
    assert.match(result.stdout, new RegExp(`^Greedy soup of 4 ingredients, eval_loss \\(lower is better\\) on ${path.join(sweep, 'val.npz')}, command: `, 'm'));
    // Lowest loss first; the diverged run, whose script printed a bare NaN, last.
    assert.match(
      result.stdout,
      /^Ingredients, best first \(lower is better\):\n {2}ft-lr3e-2-s3\/checkpoint-20 {2}0\.5283\n {2}ft-lr1e-2-s2\/checkpoint-20 {2}0\.5810\n {2}ft-lr5e-2-s1\/checkpoint-30 {2}0\.7848\n {2}ft-lr5e0-s4\/checkpoint-20 {6}NaN {2}diverged: NaN in fc1\.weight \(element 0\)\n/m,
    );
    // Adding either finite run raises the loss, so the soup is the lowest-loss run alone.
    assert.match(result.stdout, /^ {2}ft-lr1e-2-s2\/checkpoint-20 {2}0\.5284 {2}\+0\.0001 {2}left out$/m);
    assert.match(result.stdout, /^Chosen: ft-lr3e-2-s3\/checkpoint-20 \(1 of 4\)$/m);
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^- Metric: eval_loss \(lower is better\) on `/m);
    assert.match(card, /^\| ft-lr5e0-s4\/checkpoint-20 \| NaN \| no \(diverged: NaN in fc1\.weight\) \|$/m);
    const soup = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    const recipe = readRecipe(soup)!;
    await soup.close();
    assert.equal(recipe.direction, 'minimize');
    assert.equal(recipe.metric, 'eval_loss');
    assert.deepEqual(recipe.chosen, ['ft-lr3e-2-s3/checkpoint-20']);
    // The card soup card prints from the recipe says what the card beside the soup says.
    const printed = await runSoup(['card', out]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout.replace(/^# .*$/m, ''), card.replace(/^# .*$/m, ''));
  });

  it("maximises eval_accuracy from the same script, and reports the diverged run's score as null in JSON", async () => {
    const result = await runSoup([
      'greedy',
      ...runs,
      '--checkpoints',
      'last',
      ...script,
      '--metric',
      'eval_accuracy',
      '-o',
      path.join(dir, 'greedy-accuracy'),
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.direction, 'maximize');
    assert.deepEqual(scores(doc), [
      ['ft-lr1e-2-s2/checkpoint-20', 0.76, null],
      ['ft-lr3e-2-s3/checkpoint-20', 0.78, null],
      [`${NAN_RUN}/checkpoint-20`, null, 'fc1.weight'],
      ['ft-lr5e-2-s1/checkpoint-30', 0.73, null],
    ]);
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20']);
    assert.equal(doc.score, 0.783333);
    assert.deepEqual(doc.leftOut, [`${NAN_RUN}/checkpoint-20`]);
  });

  it('with --allow-nonfinite, tries the diverged run last and turns it down on its NaN score', async () => {
    const result = await runSoup([
      'greedy',
      ...runs,
      '--checkpoints',
      'last',
      ...script,
      '--metric',
      'eval_loss',
      '--allow-nonfinite',
      '-o',
      path.join(dir, 'greedy-allow.safetensors'),
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.steps.at(-1), { candidate: `${NAN_RUN}/checkpoint-20`, score: null, accepted: false });
    assert.deepEqual(doc.leftOut, []);
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20']);
  });
});

describe('--checkpoints over a sweep with a diverged run', () => {
  it("best takes the checkpoint trainer_state.json names, the diverged run's too, and greedy still leaves that one out", async () => {
    const result = await runSoup(['greedy', sweep, '--checkpoints', 'best', ...onnx, '-o', path.join(dir, 'best.safetensors'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, divergedWarning(`${NAN_RUN}/checkpoint-10`));
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(
      doc.ingredients.map((ingredient: Ingredient) => ingredient.name),
      ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20', `${NAN_RUN}/checkpoint-10`, 'ft-lr5e-2-s1/checkpoint-10'],
    );
    assert.deepEqual(doc.leftOut, [`${NAN_RUN}/checkpoint-10`]);
  });

  it('all soups every checkpoint of every run, each named by its run', async () => {
    const result = await runSoup(['compare', sweep, '--checkpoints', 'all', ...onnx, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    const ingredients = doc.rows.filter((row: { kind: string }) => row.kind === 'ingredient');
    assert.deepEqual(
      ingredients.map((row: { name: string }) => row.name),
      [
        'ft-lr1e-2-s2/checkpoint-10',
        'ft-lr1e-2-s2/checkpoint-20',
        'ft-lr3e-2-s3/checkpoint-10',
        'ft-lr3e-2-s3/checkpoint-20',
        `${NAN_RUN}/checkpoint-10`,
        `${NAN_RUN}/checkpoint-20`,
        'ft-lr5e-2-s1/checkpoint-10',
        'ft-lr5e-2-s1/checkpoint-20',
        'ft-lr5e-2-s1/checkpoint-30',
      ],
    );
    const uniform = doc.rows.find((row: { kind: string }) => row.kind === 'uniform');
    assert.deepEqual(uniform.leftOut, [`${NAN_RUN}/checkpoint-10`, `${NAN_RUN}/checkpoint-20`]);
  });
});

describe('compare over a Trainer sweep with a diverged run', () => {
  it('lists ingredients best first in the terminal and the Markdown, the diverged run last, and says which runs the soups left out', async () => {
    const markdown = path.join(dir, 'compare.md');
    const result = await runSoup(['compare', ...runs, '--checkpoints', 'last', ...onnx, '--markdown', markdown]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, divergedWarning(`${NAN_RUN}/checkpoint-20`, 'the soups and the ensemble'));
    const table = result.stdout
      .split('\n')
      .filter((line) => /^ {2}\S/.test(line))
      .map((line) => line.trim().split(/ {2,}/));
    assert.deepEqual(table, [
      ['model', 'kind', 'val'],
      ['ft-lr3e-2-s3/checkpoint-20', 'ingredient, in greedy soup', '0.7800'],
      ['ft-lr1e-2-s2/checkpoint-20', 'ingredient, in greedy soup', '0.7600'],
      ['ft-lr5e-2-s1/checkpoint-30', 'ingredient', '0.7300'],
      [`${NAN_RUN}/checkpoint-20`, 'ingredient, diverged (NaN in fc1.weight)', '0.0000'],
      ['uniform soup', `uniform, without ${NAN_RUN}/checkpoint-20`, '0.7600'],
      ['greedy soup', `greedy, without ${NAN_RUN}/checkpoint-20`, '*0.7833'],
      ['ensemble', `ensemble, without ${NAN_RUN}/checkpoint-20`, '0.7500'],
    ]);
    assert.match(
      result.stdout,
      /^Note: ft-lr5e0-s4\/checkpoint-20 diverged \(non-finite weights\): scored, but left out of the uniform soup, the greedy soup and the ensemble \(--allow-nonfinite keeps it in\)\.$/m,
    );
    const report = await readFile(markdown, 'utf8');
    assert.deepEqual(
      report.split('\n').filter((line) => line.startsWith('| ft-')),
      [
        '| ft-lr3e-2-s3/checkpoint-20 | ingredient, in greedy soup | 0.7800 |',
        '| ft-lr1e-2-s2/checkpoint-20 | ingredient, in greedy soup | 0.7600 |',
        '| ft-lr5e-2-s1/checkpoint-30 | ingredient | 0.7300 |',
        '| ft-lr5e0-s4/checkpoint-20 | ingredient, diverged (NaN in fc1.weight) | 0.0000 |',
      ],
    );
  });

  it('ranks eval_loss lowest first, says so in the header, the legend and the JSON, and names no ensemble the script cannot make', async () => {
    const markdown = path.join(dir, 'compare-loss.md');
    const result = await runSoup(['compare', ...runs, '--checkpoints', 'last', ...script, '--metric', 'eval_loss', '--markdown', markdown]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, divergedWarning(`${NAN_RUN}/checkpoint-20`, 'the soups'));
    assert.match(result.stdout, /^Comparison of 4 ingredients, eval_loss \(lower is better\), command: /);
    const table = result.stdout
      .split('\n')
      .filter((line) => /^ {2}\S/.test(line))
      .map((line) => line.trim().split(/ {2,}/));
    assert.deepEqual(table, [
      ['model', 'kind', 'val'],
      ['ft-lr3e-2-s3/checkpoint-20', 'ingredient, in greedy soup', '*0.5283'],
      ['ft-lr1e-2-s2/checkpoint-20', 'ingredient', '0.5810'],
      ['ft-lr5e-2-s1/checkpoint-30', 'ingredient', '0.7848'],
      [`${NAN_RUN}/checkpoint-20`, 'ingredient, diverged (NaN in fc1.weight)', 'NaN'],
      ['uniform soup', `uniform, without ${NAN_RUN}/checkpoint-20`, '0.5369'],
      ['greedy soup', `greedy, without ${NAN_RUN}/checkpoint-20`, '*0.5283'],
    ]);
    assert.match(result.stdout, /^\* best of its column \(lower is better\)\. /m);
    assert.match(
      result.stdout,
      /^Note: ft-lr5e0-s4\/checkpoint-20 diverged \(non-finite weights\): scored, but left out of the uniform soup and the greedy soup \(--allow-nonfinite keeps it in\)\.$/m,
    );
    const report = await readFile(markdown, 'utf8');
    assert.match(report, /^### soup compare: eval_loss \(lower is better\)$/m);
    assert.match(report, /^The best of each column \(lower is better\) is in bold\./m);
    const json = await runSoup(['compare', ...runs, '--checkpoints', 'last', ...script, '--metric', 'eval_loss', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.equal(doc.direction, 'minimize');
    const diverged = doc.rows.find((row: { name: string }) => row.name === `${NAN_RUN}/checkpoint-20`);
    assert.deepEqual([diverged.scores.val, diverged.diverged], [null, divergence]);
  });
});

describe('eval of a diverged checkpoint', () => {
  it('scores it on the ONNX export, non-finite loss as null, and marks it diverged, exit 0', async () => {
    const result = await runSoup(['eval', run(NAN_RUN, 'checkpoint-20'), ...onnx, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, 'soup: warning: checkpoint-20 diverged: NaN in fc1.weight (element 0); it is scored\n');
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.metrics, { accuracy: 0, top5: 0, loss: null, margin: null });
    assert.deepEqual(doc.diverged, divergence);
  });

  it("takes the script's bare NaN as eval_loss, says lower is better and that a soup leaves it out", async () => {
    const result = await runSoup(['eval', run(NAN_RUN, 'checkpoint-20'), ...script, '--metric', 'eval_loss']);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ {2}eval_loss {2}NaN {2}lower is better$/m);
    assert.match(result.stdout, /^Diverged: NaN in fc1\.weight \(element 0\); a soup leaves this checkpoint out\.$/m);
    const json = await runSoup(['eval', run(NAN_RUN, 'checkpoint-20'), ...script, '--metric', 'eval_loss', '--json']);
    const doc = JSON.parse(json.stdout);
    assert.deepEqual([doc.metrics, doc.direction, doc.diverged], [{ eval_loss: null }, 'minimize', divergence]);
  });
});

describe('interpolate on a Trainer sweep', () => {
  it("names two runs' checkpoint-20 by their runs, scores t = 0 as the finite end and gives no verdict over NaN weights", async () => {
    const result = await runSoup(['interpolate', run('ft-lr3e-2-s3', 'checkpoint-20'), run(NAN_RUN, 'checkpoint-20'), ...onnx, '--steps', '3']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stderr,
      `soup: warning: ${NAN_RUN}/checkpoint-20 diverged: NaN in fc1.weight (element 0); every point it weighs in holds non-finite weights, so no basin verdict is given\n`,
    );
    assert.match(
      result.stdout,
      /^Interpolation from ft-lr3e-2-s3\/checkpoint-20 \(t = 0\) to ft-lr5e0-s4\/checkpoint-20 \(t = 1\), accuracy \(higher is better\)/,
    );
    assert.match(result.stdout, /^ {2}0\.00 {4}0\.7800 {2}ft-lr3e-2-s3\/checkpoint-20$/m);
    assert.match(result.stdout, /^ {2}1\.00 {4}0\.0000 {2}ft-lr5e0-s4\/checkpoint-20 {2}non-finite weights$/m);
    assert.match(result.stdout, /^No verdict about basins: some points hold non-finite weights or scores\.$/m);
    assert.doesNotMatch(result.stdout, /barrier|one basin/i);
    const json = await runSoup([
      'interpolate',
      run('ft-lr3e-2-s3', 'checkpoint-20'),
      run(NAN_RUN, 'checkpoint-20'),
      ...script,
      '--metric',
      'eval_loss',
      '--steps',
      '3',
      '--json',
    ]);
    assert.equal(json.code, 0, json.stderr);
    const doc = JSON.parse(json.stdout);
    assert.deepEqual(
      doc.points.map((point: { t: number; score: number | null }) => [point.t, point.score]),
      [
        [0, 0.528315],
        [0.5, null],
        [1, null],
      ],
    );
    assert.deepEqual([doc.direction, doc.dip, doc.barrier], ['minimize', null, null]);
    assert.deepEqual(doc.names, ['ft-lr3e-2-s3/checkpoint-20', `${NAN_RUN}/checkpoint-20`]);
    assert.deepEqual(
      doc.diverged.map((end: { name: string }) => end.name),
      [`${NAN_RUN}/checkpoint-20`],
    );
  });

  it("measures a lower-is-better metric's barrier as a rise above the straight line", async () => {
    const result = await runSoup([
      'interpolate',
      run('ft-lr3e-2-s3', 'checkpoint-20'),
      run('ft-lr1e-2-s2', 'checkpoint-20'),
      ...script,
      '--metric',
      'eval_loss',
      '--steps',
      '3',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /eval_loss \(lower is better\) on /);
    assert.match(result.stdout, /^Largest rise above the straight line between the end points: 0\.0000\.$/m);
    assert.match(result.stdout, /^No barrier: the runs look like one basin, and should soup well\.$/m);
  });
});

describe('learned and uniform on a Trainer sweep with a diverged run', () => {
  it('soup learned --model model.onnx searches the mixing weights, scores the diverged run and gives it no weight', async () => {
    const result = await runSoup([
      'learned',
      ...runs,
      '--checkpoints',
      'last',
      ...onnx,
      '--evaluations',
      '8',
      '-o',
      path.join(dir, 'learned.safetensors'),
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stderr,
      `soup: warning: ${NAN_RUN}/checkpoint-20 diverged: NaN in fc1.weight (element 0); left out of the learned soup, it takes no weight\n`,
    );
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(scores(doc), [
      ['ft-lr1e-2-s2/checkpoint-20', 0.76, null],
      ['ft-lr3e-2-s3/checkpoint-20', 0.78, null],
      // Scored as every command scores a diverged run: NaN logits count as wrong.
      [`${NAN_RUN}/checkpoint-20`, 0, null],
      ['ft-lr5e-2-s1/checkpoint-30', 0.73, null],
    ]);
    assert.deepEqual(doc.leftOut, [`${NAN_RUN}/checkpoint-20`]);
    assert.deepEqual(doc.chosen, ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20', 'ft-lr5e-2-s1/checkpoint-30']);
    assert.equal(doc.blocks['all tensors'][`${NAN_RUN}/checkpoint-20`], 0);
    assert.equal(doc.evaluations, 4 + 8, 'every ingredient, the diverged one too, and the search budget');
  });

  it('soup learned --eval-cmd says which way eval_loss points and what data it is scored on', async () => {
    const result = await runSoup([
      'learned',
      ...runs,
      '--checkpoints',
      'last',
      ...script,
      '--metric',
      'eval_loss',
      '--evaluations',
      '4',
      '-o',
      path.join(dir, 'learned-cmd.safetensors'),
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      new RegExp(`^Learned soup of 3 ingredients \\(CMA-ES, no gradients\\), eval_loss \\(lower is better\\) on ${path.join(sweep, 'val.npz')}, command: `),
    );
    assert.match(result.stdout, /^ {2}ft-lr5e0-s4\/checkpoint-20 +0\.000 +0\.000 +0\.000 +NaN$/m);
    // The best ingredient is the lowest finite loss, never the diverged run.
    assert.match(result.stdout, /best ingredient 0\.5283, /);
  });

  it('soup uniform, which has no scores, refuses the NaN run and offers both ways, writing nothing', async () => {
    const out = path.join(dir, 'uniform');
    const result = await runSoup(['uniform', ...runs, '--checkpoints', 'last', '-o', out]);
    assert.equal(result.code, 2);
    assert.match(
      result.stderr,
      new RegExp(
        `^soup: error: ${run(NAN_RUN, 'checkpoint-20', 'model.safetensors')}: tensor "fc1\\.weight": holds NaN at element 0; a soup of it would be NaN too ` +
          '\\(leave this diverged run out \\(remove it from the inputs, or make a greedy soup, which scores it and leaves it out\\), or keep it in with --allow-nonfinite\\)\n$',
        'm',
      ),
    );
    await assert.rejects(readFile(path.join(out, 'model.safetensors')), { code: 'ENOENT' });
  });
});

describe('evaluator warnings in interpolate and learned', () => {
  const images = path.join(fixtures, 'data', 'images');
  const rawWarning = (folder: string) =>
    `soup: warning: ${folder}: the model is fed raw pixel values 0-255 (28x28x3, RGB), as no preprocessing flag and no dataset.json says otherwise; ` +
    `--scale 1/255 feeds 0-1, --preprocess imagenet or clip normalises as those models expect, --mean/--std set your own, or write them in ${path.join(folder, 'dataset.json')}\n`;

  it('say what the model is fed when an image folder has no dataset.json, as eval and greedy do', async () => {
    const raw = path.join(dir, 'raw-images');
    await cp(images, raw, { recursive: true });
    await rm(path.join(raw, 'dataset.json'));
    const conv = path.join(fixtures, 'conv', 'nchw.onnx');
    const interpolate = await runSoup(['interpolate', conv, conv, '--val', raw, '--resize', '28', '--crop', '28', '--steps', '2']);
    assert.equal(interpolate.code, 0, interpolate.stderr);
    assert.equal(interpolate.stderr, rawWarning(raw));
    const [a, b] = [path.join(dir, 'conv-a'), path.join(dir, 'conv-b')];
    for (const copy of [a, b]) await cp(path.join(fixtures, 'conv', 'nhwc'), copy, { recursive: true });
    const learned = await runSoup(['learned', a, b, '--val', raw, '--resize', '28', '--crop', '28', '--epochs', '0', '-o', path.join(dir, 'learned-raw')]);
    assert.equal(learned.code, 0, learned.stderr);
    assert.equal(learned.stderr, rawWarning(raw));
    const scaled = await runSoup(['interpolate', conv, conv, '--val', raw, '--resize', '28', '--crop', '28', '--scale', '1/255', '--steps', '2']);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stderr, '');
  });
});
