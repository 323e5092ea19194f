import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';
import { readW, tiesLines, writeRecipe } from '../helpers/merge.js';

const dir = await tempDir();
const FIXTURES = fileURLToPath(new URL('../../../fixtures/ingredients', import.meta.url));

const tensor = (values: number[]) => ({ w: { dtype: 'F32', shape: [values.length], values } });
const base = await writeSafetensorsFile(path.join(dir, 'base.safetensors'), tensor([0, 0, 0, 0]));
const a = await writeSafetensorsFile(path.join(dir, 'ckpts', 'a.safetensors'), tensor([3, -1, 2, 0.5]));
const b = await writeSafetensorsFile(path.join(dir, 'ckpts', 'b.safetensors'), tensor([-2, -4, 1, 1]));
await writeFile(path.join(dir, 'tokenizer.json'), '{"version": "1.0"}');

const recipe = (name: string, lines: string[]) => writeRecipe(path.join(dir, name), lines);

const ties = tiesLines(base, a, b);

describe('soup merge', () => {
  it('merges a mergekit YAML recipe into a .safetensors file with the recipe in its metadata', async () => {
    const out = path.join(dir, 'ties.safetensors');
    const result = await runSoup(['merge', await recipe('ties.yml', ties), '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^Merge \(ties\) of 2 ingredients -> /);
    assert.deepEqual(await readW(out), [3, -4, 2, 0]);
    const checkpoint = await SafetensorsFile.open(out);
    const written = readRecipe(checkpoint)!;
    await checkpoint.close();
    assert.equal(written.strategy, 'merge');
    assert.equal(written.method, 'ties');
    assert.equal(written.base, 'base');
    assert.deepEqual(written.chosen, ['a', 'b']);
    assert.deepEqual(written.modelParameters, { a: { weight: 1, density: 0.5 }, b: { weight: 1, density: 0.5 } });
    assert.deepEqual(written.resolvedParameters, { lambda: 1, normalize: true, rescale: false, int8_mask: false, ties_scope: 'tensor' });
    assert.equal(written.randomSeed, 0);
    assert.match(written.mergekit as string, /^merge_method: ties\n/);
    assert.deepEqual(
      written.ingredients.map((ingredient) => ingredient.name),
      ['base', 'a', 'b'],
    );
  });

  it('gives the same tensors from the flag form', async () => {
    const out = path.join(dir, 'ties-flags.safetensors');
    const result = await runSoup(['merge', path.join(dir, 'ckpts'), '--method', 'ties', '--base', base, '--density', '0.5', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as { method: string; chosen: string[]; parameters: unknown };
    assert.equal(document.method, 'ties');
    assert.deepEqual(document.chosen, ['a', 'b']);
    assert.deepEqual(document.parameters, { density: 0.5, weight: 1 });
    assert.deepEqual(await readW(out), [3, -4, 2, 0]);
  });

  it('takes per-ingredient weights as --weight NAME=W', async () => {
    const out = path.join(dir, 'linear.safetensors');
    const result = await runSoup(['merge', a, b, '--method', 'linear', '--weight', 'a=3', '--weight', 'b=1', '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readW(out), [1.75, -1.75, 1.75, 0.625]);
  });

  it('refuses linear weights summing to zero, and merges per-tensor weights through the method', async () => {
    const zero = await runSoup(['merge', a, b, '--method', 'linear', '--weight', 'a=1', '--weight', 'b=-1', '-o', path.join(dir, 'zero.safetensors')]);
    assert.equal(zero.code, 2);
    assert.equal(
      zero.stderr,
      'soup: error: linear: the weights for tensor "w" sum to 0, and normalize divides by their sum (give weights with a non-zero sum, or set normalize: false)\n',
    );
    const out = path.join(dir, 'filtered.safetensors');
    const file = await recipe('filtered.yml', [
      'merge_method: linear',
      'models:',
      `  - model: ${a}`,
      '    parameters: {weight: [{filter: w, value: 3}]}',
      `  - model: ${b}`,
      '    parameters: {weight: 1}',
    ]);
    const result = await runSoup(['merge', file, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readW(out), [1.75, -1.75, 1.75, 0.625]);
  });

  it('writes mergekit_config.yml and the tokenizer beside a folder output', async () => {
    const out = path.join(dir, 'ties-folder');
    const file = await recipe('ties-tokenizer.yml', [...ties, 'tokenizer_source: base', 'out_dtype: float16']);
    const result = await runSoup(['merge', file, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'mergekit_config.yml', 'model.safetensors', 'tokenizer.json']);
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^- ties$/m, 'the method is a tag of the card');
    assert.match(card, /^This model merges the weights of 2 checkpoints with ties /m);
    assert.match(card, /^- Base model \(its task vectors' origin, not an ingredient\): base$/m);
    assert.match(card, /^- Parameters: lambda=1, /m);
    assert.ok(card.includes(`### mergekit configuration\n\n\`\`\`yaml\nmerge_method: ties\n`), card);
    const config = parse(await readFile(path.join(out, 'mergekit_config.yml'), 'utf8')) as Record<string, unknown>;
    assert.equal(config.merge_method, 'ties');
    assert.equal(config.base_model, base);
    assert.equal(config.out_dtype, 'float16');
    assert.equal(await readFile(path.join(out, 'tokenizer.json'), 'utf8'), '{"version": "1.0"}');
    const checkpoint = await SafetensorsFile.open(path.join(out, 'model.safetensors'));
    assert.equal(checkpoint.tensors()[0]!.dtype, 'F16');
    await checkpoint.close();
  });

  it('gives the same bytes for dare_ties with the same seed, and other masks with another', async () => {
    const big = Array.from({ length: 64 }, (_, i) => Math.sin(i) + 0.01);
    const bigBase = await writeSafetensorsFile(path.join(dir, 'dare', 'base.safetensors'), tensor(big.map(() => 0)));
    await writeSafetensorsFile(path.join(dir, 'dare', 'runs', 'x.safetensors'), tensor(big));
    await writeSafetensorsFile(path.join(dir, 'dare', 'runs', 'y.safetensors'), tensor(big.map((v) => -v / 2)));
    const run = async (seed: string, name: string) => {
      const out = path.join(dir, 'dare', name);
      const result = await runSoup([
        'merge',
        path.join(dir, 'dare', 'runs'),
        '--method',
        'dare_ties',
        '--base',
        bigBase,
        '--density',
        '0.5',
        '--random-seed',
        seed,
        '-o',
        out,
      ]);
      assert.equal(result.code, 0, result.stderr);
      return readFile(out);
    };
    const first = await run('7', 'one.safetensors');
    assert.deepEqual(await run('7', 'two.safetensors'), first);
    assert.notDeepEqual(await run('8', 'three.safetensors'), first);
  });

  it('reports a bad recipe value in one line naming the file and key, and writes nothing', async () => {
    const file = await recipe(
      'bad.yml',
      ties.map((line) => line.replace('density: 0.5}', 'density: 1.5}')),
    );
    const out = path.join(dir, 'bad.safetensors');
    const result = await runSoup(['merge', file, '-o', out]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${file}: models[0].parameters.density: must be in (0, 1]\n`);
    await assert.rejects(readFile(out));
  });

  it('stops before writing when a filter list gives a required parameter no value for a tensor, as mergekit does', async () => {
    const file = await recipe('filters.yml', [
      'merge_method: linear',
      'models:',
      `  - model: ${a}`,
      '    parameters: {weight: [{filter: mlp, value: 1}]}',
      `  - model: ${b}`,
      '    parameters: {weight: 1}',
    ]);
    const out = path.join(dir, 'filters.safetensors');
    const result = await runSoup(['merge', file, '-o', out]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'soup: error: missing required parameter weight for a.w: no filter entry matches this tensor and no value applies to every tensor ' +
        '(add an entry without filter (or filter: "*") to weight, or set weight in the global parameters)\n',
    );
    await assert.rejects(readFile(out));
  });

  it('averages the base into a linear merge that lists it, with its weight', async () => {
    const file = await recipe('linear-base.yml', [
      'merge_method: linear',
      `base_model: ${b}`,
      'models:',
      `  - model: ${a}`,
      '    parameters: {weight: 3}',
      `  - model: ${b}`,
      '    parameters: {weight: 1}',
    ]);
    const out = path.join(dir, 'linear-base.safetensors');
    const result = await runSoup(['merge', file, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await readW(out), [1.75, -1.75, 1.75, 0.625]);
  });

  it('says what a slice lacks', async () => {
    const file = await recipe('slices.yml', ['merge_method: linear', 'slices:', '  - sources: []']);
    const result = await runSoup(['merge', file, '-o', path.join(dir, 'slices.safetensors')]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${file}: slices[0].sources: is required: a list of {model, layer_range}\n`);
  });

  it('reports bad flags as flags', async () => {
    const out = path.join(dir, 'never.safetensors');
    const cases: [string[], string][] = [
      [['--method', 'ties', '--base', base, '--density', '0'], '--density: must be in (0, 1]'],
      [['--method', 'ties'], '--base: is required: ties adds to it'],
      [['--method', 'ties', '--base', path.join(dir, 'ckpts')], `--base: ${path.join(dir, 'ckpts')} holds 2 checkpoints; name one`],
      [
        ['--method', 'nope'],
        '--method: "nope" is not a merge method (linear, task_arithmetic, ties, dare_linear, dare_ties, slerp, model_stock, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, karcher, nuslerp, multislerp, nearswap, arcee_fusion, passthrough)',
      ],
      [['--method', 'linear', '--weight', 'zz=1'], '--weight: no ingredient named "zz" (ingredients: a, b)'],
      [['--method', 'slerp', '--base', base, '--t', '0.5'], '--inputs: slerp takes exactly 1 model besides base_model; got 2'.replace('--inputs', 'inputs')],
      [
        [],
        'say how to merge: --method NAME (linear, task_arithmetic, ties, dare_linear, dare_ties, slerp, model_stock, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, karcher, nuslerp, multislerp, nearswap, arcee_fusion, passthrough), or give a mergekit YAML recipe',
      ],
    ];
    for (const [flags, message] of cases) {
      const result = await runSoup(['merge', path.join(dir, 'ckpts'), ...flags, '-o', out]);
      assert.equal(result.code, 2, flags.join(' '));
      assert.equal(result.stderr, `soup: error: ${message}\n`);
    }
  });

  it('merges the TF.js fixtures with linear into what soup uniform makes', async () => {
    const merged = path.join(dir, 'fixtures-linear');
    const uniform = path.join(dir, 'fixtures-uniform');
    assert.equal((await runSoup(['merge', FIXTURES, '--method', 'linear', '-o', merged])).code, 0);
    assert.equal((await runSoup(['uniform', FIXTURES, '-o', uniform])).code, 0);
    assert.ok((await readdir(merged)).includes('mergekit_config.yml'));
    const diff = await runSoup(['diff', merged, uniform, '--tolerance', '1e-6']);
    assert.equal(diff.code, 0, diff.stdout);
  });

  it('merges the TF.js fixtures with ties onto one of them as the base, never counting the base as an ingredient', async () => {
    const out = path.join(dir, 'fixtures-ties');
    const baseModel = path.join(FIXTURES, 'lr1e-4-s1');
    const result = await runSoup(['merge', FIXTURES, '--method', 'ties', '--base', baseModel, '--density', '0.3', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as { chosen: string[]; base: { name: string } };
    assert.equal(document.base.name, 'lr1e-4-s1');
    assert.equal(document.chosen.length, 7);
    assert.ok(!document.chosen.includes('lr1e-4-s1'));
    const checkpoint = await TfjsCheckpoint.open(out);
    assert.equal(readRecipe(checkpoint)?.method, 'ties');
    await checkpoint.close();
    const single = path.join(dir, 'fixtures-ties.pt');
    const pt = await runSoup(['merge', FIXTURES, '--method', 'ties', '--base', baseModel, '--density', '0.3', '-o', single]);
    assert.equal(pt.code, 0, pt.stderr);
    assert.match(pt.stdout, /written +[\d.]+ kB \(pytorch\)/);
  });
});

describe('soup greedy --method', () => {
  it('grows a TIES merge on the fixtures, scoring candidates as TIES ships them', async () => {
    const out = path.join(dir, 'greedy-ties');
    const baseModel = path.join(FIXTURES, 'lr1e-4-s1');
    const data = fileURLToPath(new URL('../../../fixtures/data/val', import.meta.url));
    const result = await runSoup(['greedy', FIXTURES, '--val', data, '--method', 'ties', '--base', baseModel, '--density', '0.5', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as { method: string; base: string; ingredients: unknown[]; steps: unknown[]; chosen: string[] };
    assert.equal(document.method, 'ties');
    assert.equal(document.base, 'lr1e-4-s1');
    assert.equal(document.ingredients.length, 7);
    assert.equal(document.steps.length, 6);
    const checkpoint = await TfjsCheckpoint.open(out);
    const written = readRecipe(checkpoint)!;
    await checkpoint.close();
    assert.equal(written.method, 'ties');
    assert.deepEqual(written.chosen, document.chosen);
  });

  it('scores through the TF.js models when the base is a safetensors file of the same tensors', async () => {
    const base = path.join(dir, 'tfjs-base.safetensors');
    const made = await runSoup(['uniform', path.join(FIXTURES, 'lr1e-4-s1'), path.join(FIXTURES, 'lr3e-4-s2'), '-o', base]);
    assert.equal(made.code, 0, made.stderr);
    const data = fileURLToPath(new URL('../../../fixtures/data/val', import.meta.url));
    const out = path.join(dir, 'greedy-ties-safetensors-base.safetensors');
    const models = ['lr1e-4-s1', 'lr3e-4-s2', 'lr1e-3-ls-s5'].map((name) => path.join(FIXTURES, name));
    const result = await runSoup(['greedy', ...models, '--val', data, '--method', 'ties', '--base', base, '--density', '0.5', '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as { base: string; backend: string; ingredients: { score: number }[] };
    assert.equal(document.base, 'tfjs-base');
    assert.match(document.backend, /^(wasm|node|cpu)$/);
    assert.ok(document.ingredients.every((ingredient) => ingredient.score > 0.5));
  });

  it('refuses a method greedy cannot grow, and merge flags without --method', async () => {
    const slerp = await runSoup(['greedy', path.join(dir, 'ckpts'), '--val', 'x.npz', '--method', 'slerp', '-o', path.join(dir, 'g.safetensors')]);
    assert.equal(
      slerp.stderr,
      'soup: error: --method: greedy grows a soup one ingredient at a time, which slerp cannot do (use linear, task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear, sce, karcher, multislerp)\n',
    );
    const stray = await runSoup(['greedy', path.join(dir, 'ckpts'), '--val', 'x.npz', '--density', '0.5', '-o', path.join(dir, 'g.safetensors')]);
    assert.equal(stray.stderr, 'soup: error: --density: only used with --method (greedy over a merge method)\n');
  });
});

describe('soup compare --merge', () => {
  it('adds a row of kind merge per recipe to the JSON, the Markdown and the plot', async () => {
    const data = fileURLToPath(new URL('../../../fixtures/data', import.meta.url));
    const file = await recipe('fixtures-ties.yml', [
      'merge_method: ties',
      `base_model: ${path.join(FIXTURES, 'lr1e-4-s1')}`,
      'models:',
      `  - model: ${path.join(FIXTURES, 'lr3e-4-s2')}`,
      '    parameters: {weight: 1, density: 0.5}',
      `  - model: ${path.join(FIXTURES, 'lr3e-4-e4-s6')}`,
      '    parameters: {weight: 1, density: 0.5}',
    ]);
    const markdown = path.join(dir, 'compare.md');
    const plot = path.join(dir, 'compare.svg');
    const result = await runSoup([
      'compare',
      FIXTURES,
      '--val',
      path.join(data, 'val'),
      '--test',
      `test=${path.join(data, 'test.npz')}`,
      '--merge',
      file,
      '--markdown',
      markdown,
      '--plot',
      plot,
      '--json',
    ]);
    assert.equal(result.code, 0, result.stderr);
    const document = JSON.parse(result.stdout) as { rows: { name: string; kind: string; scores: Record<string, number>; chosen?: string[] }[] };
    const row = document.rows.find((candidate) => candidate.kind === 'merge')!;
    assert.equal(row.name, 'ties (fixtures-ties.yml)');
    assert.deepEqual(Object.keys(row.scores), ['val', 'test']);
    assert.deepEqual(row.chosen, ['lr3e-4-s2', 'lr3e-4-e4-s6']);
    assert.match(await readFile(markdown, 'utf8'), /^\| ties \(fixtures-ties\.yml\) \| merge \|/m);
    assert.match(await readFile(plot, 'utf8'), /<polygon class="merge" /);
  });

  it('checks every recipe before scoring anything', async () => {
    const file = await recipe('compare-bad.yml', ['merge_method: ties', 'models: []']);
    const result = await runSoup(['compare', FIXTURES, '--val', 'nowhere.npz', '--merge', file]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${file}: base_model: is required: ties adds to it\n`);
  });
});
