/**
 * soup on a fine-tuning sweep as the Hugging Face Trainer leaves it (fixtures/trainer-sweep, made by
 * scripts/make-trainer-sweep.py): runs of checkpoint-N folders with training state beside the weights,
 * one run with final weights, one diverged run, an ONNX export in the sweep folder and an evaluation
 * script that loads a model folder.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
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
const model = path.join(sweep, 'model.onnx');
const val = path.join(sweep, 'val.npz');
const evalScript = `${SYSTEM_PYTHON} ${path.join(sweep, 'eval.py')}`;
const dir = await tempDir();
const finalWarning = `soup: warning: ${run('ft-lr5e-2-s1')} holds final weights and checkpoint-10, checkpoint-20, checkpoint-30: using the final weights (--checkpoints last, best or all picks checkpoints instead)\n`;

const names = (doc: { ingredients: { name: string }[] }) => doc.ingredients.map((ingredient) => ingredient.name);

describe('soup on a Trainer sweep', () => {
  it('soups runs/*/checkpoint-20 under names that say which run each is from, in the summary, JSON, recipe and card', async () => {
    const out = path.join(dir, 'uniform');
    const inputs = [run('ft-lr3e-2-s3', 'checkpoint-20'), run('ft-lr1e-2-s2', 'checkpoint-20')];
    const result = await runSoup(['uniform', ...inputs, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.chosen, ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20']);
    assert.deepEqual(names(doc), doc.chosen);
    const soup = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.deepEqual(
      readRecipe(soup)!.ingredients.map((ingredient) => ingredient.name),
      doc.chosen,
    );
    await soup.close();
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^\| ft-lr1e-2-s2\/checkpoint-20 \| yes \|\n\| ft-lr3e-2-s3\/checkpoint-20 \| yes \|$/m);
    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'config.json', 'model.safetensors']);
    const text = await runSoup(['uniform', ...inputs, '-o', path.join(dir, 'uniform-text')]);
    assert.match(text.stdout, /^ {2}ingredients {2}ft-lr1e-2-s2\/checkpoint-20, ft-lr3e-2-s3\/checkpoint-20$/m);
  });

  it('greedy over the whole sweep folder leaves out the --model export lying in it and the diverged run, and names every checkpoint by its run', async () => {
    const out = path.join(dir, 'greedy.safetensors');
    const result = await runSoup(['greedy', sweep, '--model', model, '--val', val, '--allow-nonfinite', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.ok(result.stderr.startsWith(finalWarning), result.stderr);
    assert.match(
      result.stderr,
      new RegExp(
        `^soup: warning: ${sweep}: every checkpoint of runs ft-lr1e-2-s2, ft-lr3e-2-s3, ft-lr5e0-s4 is an ingredient \\(6 in all; --checkpoints last or best takes one per run\\)$`,
        'm',
      ),
    );
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(names(doc), [
      'ft-lr1e-2-s2/checkpoint-10',
      'ft-lr1e-2-s2/checkpoint-20',
      'ft-lr3e-2-s3/checkpoint-10',
      'ft-lr3e-2-s3/checkpoint-20',
      'ft-lr5e0-s4/checkpoint-10',
      'ft-lr5e0-s4/checkpoint-20',
      'ft-lr5e-2-s1',
    ]);
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-10']);
    assert.equal(doc.score, 0.79);
  });

  it("compare --checkpoints best soups each run's best checkpoint by trainer_state.json", async () => {
    const result = await runSoup([
      'compare',
      run('ft-lr5e-2-s1'),
      run('ft-lr1e-2-s2'),
      run('ft-lr3e-2-s3'),
      '--checkpoints',
      'best',
      '--model',
      model,
      '--val',
      val,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const rows = JSON.parse(result.stdout).rows as { name: string; kind: string; scores: { val: number }; chosen?: string[] }[];
    assert.deepEqual(
      rows.filter((row) => row.kind === 'ingredient').map((row) => [row.name, row.scores.val]),
      [
        ['ft-lr1e-2-s2/checkpoint-20', 0.76],
        ['ft-lr3e-2-s3/checkpoint-20', 0.78],
        // The run's best (lowest eval_loss) checkpoint, not its last (checkpoint-30) or its final weights.
        ['ft-lr5e-2-s1/checkpoint-10', 0.7366666666666667],
      ],
    );
    assert.deepEqual(rows.find((row) => row.kind === 'greedy')!.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20']);
  });

  it('hands an evaluation script that loads a model folder a folder with config.json, in --work-dir, removed afterwards', async () => {
    const work = path.join(dir, 'work');
    await mkdir(work);
    const out = path.join(dir, 'greedy-cmd');
    const result = await runSoup([
      'greedy',
      run('ft-lr5e-2-s1'),
      run('ft-lr1e-2-s2'),
      run('ft-lr3e-2-s3'),
      '--checkpoints',
      'last',
      '--eval-cmd',
      `${evalScript} {ckpt} {data}`,
      '--val',
      val,
      '--metric',
      'eval_accuracy',
      '--work-dir',
      work,
      '-o',
      out,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    // What eval.py prints for each checkpoint folder on its own.
    assert.deepEqual(
      doc.ingredients.map((ingredient: { name: string; score: number }) => [ingredient.name, ingredient.score]),
      [
        ['ft-lr1e-2-s2/checkpoint-20', 0.76],
        ['ft-lr3e-2-s3/checkpoint-20', 0.78],
        ['ft-lr5e-2-s1/checkpoint-30', 0.73],
      ],
    );
    assert.deepEqual(doc.steps, [
      { candidate: 'ft-lr1e-2-s2/checkpoint-20', score: 0.783333, accepted: true },
      { candidate: 'ft-lr5e-2-s1/checkpoint-30', score: 0.76, accepted: false },
    ]);
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20']);
    assert.deepEqual(await readdir(work), [], 'every candidate folder is removed');
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^\| 3 \| ft-lr5e-2-s1\/checkpoint-30 \| 0\.7600 \| left out \|$/m);
  });

  it('puts the weights file where the command says {ckpt_file}, inside the {ckpt} folder', async () => {
    const check = `test "$(dirname {ckpt_file})" = {ckpt} && test -f {ckpt}/config.json && basename {ckpt_file} >&2 && ${evalScript} {ckpt} {data}`;
    const result = await runSoup(['eval', run('ft-lr3e-2-s3', 'checkpoint-20'), '--eval-cmd', check, '--val', val, '--metric', 'eval_loss', '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).metrics, { eval_loss: 0.528315, eval_accuracy: 0.78 });
  });

  it('refuses training state given as a checkpoint, with the way out', async () => {
    for (const [command, file] of [
      ['eval', 'optimizer.pt'],
      ['inspect', 'training_args.bin'],
    ] as const) {
      const target = run('ft-lr1e-2-s2', 'checkpoint-10', file);
      const result = await runSoup([command, target, ...(command === 'eval' ? ['--model', model, '--val', val] : [])]);
      assert.equal(result.code, 2);
      assert.equal(
        result.stderr,
        `soup: error: ${target}: is training state saved beside the weights (to resume training), not model weights (pass the checkpoint folder (it holds model.safetensors or pytorch_model.bin), or the weights file itself)\n`,
      );
    }
  });

  it('says what --checkpoints final cannot find, and exits 2', async () => {
    const result = await runSoup(['inspect', run('ft-lr1e-2-s2'), '--checkpoints', 'final']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${run('ft-lr1e-2-s2')} has no final weights (model.safetensors or pytorch_model.bin), only checkpoint-10, checkpoint-20 (pick checkpoints with --checkpoints last, best or all)\n`,
    );
    const wrong = await runSoup(['inspect', run('ft-lr1e-2-s2'), '--checkpoints', 'first']);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /^soup: error: option '--checkpoints <which>' argument 'first' is invalid\. Allowed choices are final, last, best, all\.$/m);
  });
});

describe('merges of model folders (flag form)', () => {
  it('names Hugging Face folder ingredients by folder, so DARE draws a mask per ingredient and the recipe and mergekit_config.yml point at the folders', async () => {
    const out = path.join(dir, 'dare');
    const a = run('ft-lr1e-2-s2', 'checkpoint-20');
    const b = run('ft-lr3e-2-s3', 'checkpoint-20');
    const base = run('ft-lr5e-2-s1', 'checkpoint-10');
    const result = await runSoup([
      'merge',
      a,
      b,
      '--method',
      'dare_linear',
      '--base',
      base,
      '--density',
      '0.5',
      '--weight',
      'ft-lr1e-2-s2/checkpoint-20=0.7',
      '-o',
      out,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(names(doc), ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20']);
    assert.equal(doc.base.name, 'ft-lr5e-2-s1/checkpoint-10', 'the base is named with the ingredients, by its run');
    assert.deepEqual(Object.keys(doc.modelParameters), names(doc));
    assert.equal(
      await readFile(path.join(out, 'mergekit_config.yml'), 'utf8'),
      `merge_method: dare_linear\nbase_model: ${base}\nmodels:\n  - model: ${a}\n    parameters:\n      weight: 0.7\n  - model: ${b}\nparameters:\n  density: 0.5\n  weight: 1\n`,
    );
    // An entry stays at the base only where every ingredient's mask dropped it: 1/4 of them with a
    // mask per ingredient at density 0.5, 1/2 with one mask shared by all.
    const [merged, origin] = [
      await SafetensorsFile.open(path.join(out, 'model.safetensors')),
      await SafetensorsFile.open(path.join(base, 'model.safetensors')),
    ];
    let same = 0;
    let total = 0;
    for (const tensor of merged.tensors()) {
      const [x, y] = [await merged.readFloats(tensor.name), await origin.readFloats(tensor.name)];
      for (let i = 0; i < x.length; i++) same += x[i] === y[i] ? 1 : 0;
      total += x.length;
    }
    await Promise.all([merged.close(), origin.close()]);
    assert.ok(same / total > 0.15 && same / total < 0.35, `${same} of ${total} entries kept the base's value`);
  });

  it("names a mergekit YAML recipe's checkpoint-N models by their runs too", async () => {
    const recipe = path.join(dir, 'ties.yml');
    await writeFile(
      recipe,
      `merge_method: ties\nbase_model: ${run('ft-lr5e-2-s1', 'checkpoint-10')}\nmodels:\n` +
        ['ft-lr1e-2-s2', 'ft-lr3e-2-s3'].map((name) => `  - model: ${run(name, 'checkpoint-20')}\n    parameters: {weight: 1, density: 0.5}\n`).join(''),
    );
    const result = await runSoup(['merge', recipe, '-o', path.join(dir, 'ties'), '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.base.name, 'ft-lr5e-2-s1/checkpoint-10');
    assert.deepEqual(names(doc), ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20']);
  });

  it('greedy --method names the folder ingredients as greedy does', async () => {
    const result = await runSoup([
      'greedy',
      run('ft-lr1e-2-s2'),
      run('ft-lr3e-2-s3'),
      '--checkpoints',
      'last',
      '--method',
      'linear',
      '--model',
      model,
      '--val',
      val,
      '-o',
      path.join(dir, 'linear.safetensors'),
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(names(doc), ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20']);
    assert.deepEqual(doc.chosen, ['ft-lr3e-2-s3/checkpoint-20', 'ft-lr1e-2-s2/checkpoint-20']);
  });

  it('exits 2 on --key nosuch in merge and greedy --method, as uniform does, and writes nothing', async () => {
    const runs = path.join(fixtures, 'torch', 'runs');
    const message = `soup: error: ${path.join(runs, 'run-1.pt')}: has no entry "nosuch" (its entries: fc1.weight, fc1.bias, fc2.weight, fc2.bias)\n`;
    for (const args of [
      ['uniform', runs],
      ['merge', runs, '--method', 'linear'],
      ['greedy', runs, '--method', 'linear', '--eval-cmd', 'echo 1 # {ckpt}'],
    ]) {
      const out = path.join(dir, `nosuch-${args[0]}.safetensors`);
      const result = await runSoup([...args, '--key', 'nosuch', '-o', out]);
      assert.equal(result.code, 2, args.join(' '));
      assert.equal(result.stderr, message, args.join(' '));
      await assert.rejects(readFile(out), { code: 'ENOENT' });
    }
  });
});
