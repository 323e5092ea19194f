import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll } from '../../../src/checkpoint/discover.js';
import { openMergeRecipe } from '../../../src/soup/merge/inputs.js';
import { MERGEKIT_CONFIG, mergeOutputPlan, mergeSoup } from '../../../src/soup/strategies/merge.js';
import { prepareOutput, writeOutcome, type PreparedOutput } from '../../../src/soup/write.js';
import { tempDir, writeSafetensorsFile } from '../../helpers/files.js';
import { readW, tiesLines, writeRecipe } from '../../helpers/merge.js';

const dir = await tempDir();
const tensor = (values: number[]) => ({ w: { dtype: 'F32', shape: [values.length], values } });
const base = await writeSafetensorsFile(path.join(dir, 'base.safetensors'), tensor([0, 0, 0, 0]));
const a = await writeSafetensorsFile(path.join(dir, 'a.safetensors'), tensor([3, -1, 2, 0.5]));
const b = await writeSafetensorsFile(path.join(dir, 'b.safetensors'), tensor([-2, -4, 1, 1]));

const options = { source: 'the test', randomSeed: 0, allowNonFinite: false, command: ['merge', 'r.yml'] };
const ties = (more: string[] = []) => {
  const [method, ...rest] = tiesLines(base, a, b);
  return [method!, ...more, ...rest];
};

/** Opens the recipe's checkpoints and prepares `out` as soup merge does, then runs `use` and closes them. */
async function withRecipe(
  lines: string[],
  out: string,
  use: (opened: Awaited<ReturnType<typeof openMergeRecipe>>, output: PreparedOutput) => Promise<void>,
): Promise<void> {
  const recipe = await openMergeRecipe(await writeRecipe(path.join(dir, `${path.basename(out)}.yml`), lines));
  try {
    const plan = mergeOutputPlan(recipe.opened);
    await use(recipe, await prepareOutput(plan.shape, { out, protect: plan.protect }));
  } finally {
    await closeAll(recipe.opened.all);
  }
}

describe('mergeSoup', () => {
  it('checks the output against the base, takes its files from the base and models, and protects every input', async () => {
    const { opened } = await openMergeRecipe(await writeRecipe(path.join(dir, 'plan.yml'), ties()));
    try {
      const plan = mergeOutputPlan(opened);
      assert.deepEqual(
        [plan.shape, plan.companionsFrom].map((list) => list.map((checkpoint) => checkpoint.name)),
        [['base'], ['base', 'a', 'b']],
      );
      assert.deepEqual(plan.protect, [base, base, a, a, b, b]);
    } finally {
      await closeAll(opened.all);
    }
  });

  it('merges a recipe without the CLI: the tensors, the recipe, the --json document and mergekit_config.yml for a folder', async () => {
    const out = path.join(dir, 'ties');
    await withRecipe(ties(), out, async ({ config, opened }, output) => {
      const made = await mergeSoup(config, opened, output, options);
      assert.deepEqual(made.document, {
        strategy: 'merge',
        method: 'ties',
        base: { name: 'base', path: base },
        ingredients: [
          { name: 'a', path: a },
          { name: 'b', path: b },
        ],
        chosen: ['a', 'b'],
        parameters: {},
        modelParameters: { a: { weight: 1, density: 0.5 }, b: { weight: 1, density: 0.5 } },
        randomSeed: 0,
        format: 'safetensors-folder',
      });
      assert.deepEqual([...made.moreFiles.keys()], [MERGEKIT_CONFIG]);
      assert.deepEqual(made.record.extra?.resolvedParameters, { lambda: 1, normalize: true, rescale: false, int8_mask: false, ties_scope: 'tensor' });
      assert.deepEqual(made.record.command, ['merge', 'r.yml']);
      const written = await writeOutcome(opened.all, output, made, undefined, made.moreFiles);
      assert.deepEqual(await readW(path.join(written.path, 'model.safetensors')), [3, -4, 2, 0]);
      assert.match(await readFile(path.join(out, MERGEKIT_CONFIG), 'utf8'), /^merge_method: ties\n/);
    });
  });

  it('streams a plain weighted mean through the mixer, with nothing beside a single-file output', async () => {
    const linear = [
      'merge_method: linear',
      'models:',
      `  - model: ${a}`,
      '    parameters: {weight: 0.75}',
      `  - model: ${b}`,
      '    parameters: {weight: 0.25}',
    ];
    await withRecipe(linear, path.join(dir, 'linear.safetensors'), async ({ config, opened }, output) => {
      const made = await mergeSoup(config, opened, output, { ...options, dtype: 'F32' });
      assert.equal(made.moreFiles.size, 0);
      assert.equal(made.document.base, null);
      assert.equal(made.record.extra?.dtype, 'F32');
      const written = await writeOutcome(opened.all, output, made);
      assert.deepEqual(await readW(written.path), [1.75, -1.75, 1.75, 0.625]);
    });
  });

  it('refuses a tokenizer_source when the output is a single file, naming the output', async () => {
    const out = path.join(dir, 'single.safetensors');
    await withRecipe(ties(['tokenizer_source: base']), out, async ({ config, opened }, output) => {
      await assert.rejects(mergeSoup(config, opened, output, options), {
        message: `tokenizer_source: base needs a folder output to go in, and ${out} is a single .safetensors file`,
      });
      await output.claim?.release();
    });
  });
});
