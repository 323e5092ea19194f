import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

const LOADING_FILES: Record<string, string> = {
  'config.json': JSON.stringify({ _name_or_path: 'google-bert/bert-base-uncased', architectures: ['BertForSequenceClassification'], model_type: 'bert' }),
  'generation_config.json': '{"max_length": 64}',
  'tokenizer.json': '{"version":"1.0","model":{"type":"WordPiece"}}',
  'tokenizer_config.json': '{"tokenizer_class":"BertTokenizer"}',
  'special_tokens_map.json': '{"cls_token":"[CLS]"}',
  'vocab.txt': '[PAD]\n[CLS]\n[SEP]\nsoup\n',
};
const TRAINING_STATE = ['optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'training_args.bin', 'trainer_state.json'];

/** What `soup` is tried on in the issue: a Hugging Face Trainer output folder with three checkpoints. */
async function trainerRun(name: string, tweak: (step: number) => Record<string, string> = () => ({})): Promise<string> {
  const run = path.join(dir, name);
  for (const [k, step] of [1500, 500, 1000].entries()) {
    const folder = path.join(run, `checkpoint-${step}`);
    await writeSafetensorsFile(path.join(folder, 'model.safetensors'), mlpTensors(k), { format: 'pt' });
    for (const [file, text] of Object.entries({ ...LOADING_FILES, ...tweak(step) })) await writeFile(path.join(folder, file), text);
    for (const file of TRAINING_STATE) await writeFile(path.join(folder, file), `training state of step ${step}`);
  }
  return run;
}

/**
 * What a loader reads from a model folder (transformers' from_pretrained for the model, its tokenizer
 * and generation config): each must be in the soup, identical to the ingredient's except the weights,
 * which must hold the same tensors.
 */
async function assertLoadsLikeIngredient(soup: string, ingredient: string): Promise<void> {
  const reads = (await readdir(ingredient)).filter((file) => file in LOADING_FILES);
  assert.deepEqual(reads, Object.keys(LOADING_FILES).sort());
  for (const file of reads) assert.equal(await readFile(path.join(soup, file), 'utf8'), await readFile(path.join(ingredient, file), 'utf8'), file);
  const [a, b] = [await SafetensorsFile.open(path.join(soup, 'model.safetensors')), await SafetensorsFile.open(path.join(ingredient, 'model.safetensors'))];
  assert.deepEqual(
    a.tensors().map(({ name, shape, dtype }) => [name, shape, dtype]),
    b.tensors().map(({ name, shape, dtype }) => [name, shape, dtype]),
  );
  assert.equal(a.metadata.format, 'pt', 'the "format": "pt" that transformers checks for is kept');
  await Promise.all([a.close(), b.close()]);
}

describe('Hugging Face model folders', () => {
  it('writes a soup folder that loads like a checkpoint: config, tokenizer and a model card, and no training state', async () => {
    const run = await trainerRun('trainer');
    const out = path.join(dir, 'soup');
    const result = await runSoup(['uniform', run, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.chosen, ['checkpoint-500', 'checkpoint-1000', 'checkpoint-1500'], 'natural order, not text order');
    assert.deepEqual(
      doc.ingredients.map((i: { name: string }) => i.name),
      doc.chosen,
    );
    assert.deepEqual(
      await readdir(out),
      [
        'README.md',
        'config.json',
        'generation_config.json',
        'model.safetensors',
        'special_tokens_map.json',
        'tokenizer.json',
        'tokenizer_config.json',
        'vocab.txt',
      ].sort(),
    );
    await assertLoadsLikeIngredient(out, path.join(run, 'checkpoint-500'));
    assert.deepEqual(
      (await readdir(dir)).filter((name) => name.includes('.tmp-')),
      [],
      'no temporary folder is left',
    );

    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(
      card,
      /^---\ntags:\n- model-soup\n- merge\n- uniform-soup\nlibrary_name: transformers\nbase_model: google-bert\/bert-base-uncased\n---\n\n# soup\n/,
    );
    assert.match(card, /^\| checkpoint-500 \| yes \|\n\| checkpoint-1000 \| yes \|\n\| checkpoint-1500 \| yes \|$/m);
    assert.match(card, /^- Config and tokenizer files from: checkpoint-500$/m);
    assert.ok(card.includes(`\`\`\`sh\nsoup uniform ${run} -o ${out}\n\`\`\``), card);

    const printed = await runSoup(['card', out]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.equal(printed.stdout, card, 'soup card prints the README.md the folder got');
  });

  it('warns when a tokenizer differs between checkpoints and takes it from the first, or from --copy-from', async () => {
    const run = await trainerRun('retokenized', (step): Record<string, string> => (step === 1500 ? { 'tokenizer.json': '{"version":"2.0"}' } : {}));
    const out = path.join(dir, 'retokenized-soup');
    const result = await runSoup(['uniform', run, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(
      result.stderr,
      'soup: warning: tokenizer.json differs between ingredients; the soup takes it from checkpoint-500 (--copy-from NAME picks another ingredient)\n',
    );
    assert.equal(await readFile(path.join(out, 'tokenizer.json'), 'utf8'), LOADING_FILES['tokenizer.json']);
    assert.match(result.stdout, /^ {2}ingredients {2}checkpoint-500, checkpoint-1000, checkpoint-1500$/m);
    assert.match(
      result.stdout,
      /^ {2}with {9}config\.json, generation_config\.json, special_tokens_map\.json, tokenizer\.json, tokenizer_config\.json, vocab\.txt \(from checkpoint-500\), README\.md \(model card\)$/m,
    );

    const chosen = path.join(dir, 'chosen-soup');
    const copied = await runSoup(['uniform', run, '-o', chosen, '--copy-from', 'checkpoint-1500', '--json']);
    assert.equal(copied.code, 0, copied.stderr);
    assert.deepEqual(JSON.parse(copied.stdout).warnings, ['tokenizer.json differs between ingredients; the soup takes it from checkpoint-1500']);
    assert.equal(await readFile(path.join(chosen, 'tokenizer.json'), 'utf8'), '{"version":"2.0"}');

    const wrong = await runSoup(['uniform', run, '-o', path.join(dir, 'never'), '--copy-from', 'checkpoint-2000']);
    assert.equal(wrong.code, 2);
    assert.equal(
      wrong.stderr,
      'soup: error: --copy-from: no ingredient is named "checkpoint-2000" (ingredients: checkpoint-500, checkpoint-1000, checkpoint-1500)\n',
    );
    assert.ok(!(await readdir(dir)).includes('never'), 'nothing is written');
  });

  it('leaves the card out with --no-card, and prints the card of a single-file soup from its metadata', async () => {
    const run = await trainerRun('cardless');
    const out = path.join(dir, 'cardless-soup');
    assert.equal((await runSoup(['uniform', run, '-o', out, '--no-card'])).code, 0);
    assert.ok(!(await readdir(out)).includes('README.md'));
    assert.ok((await readdir(out)).includes('config.json'));

    const file = path.join(dir, 'single.safetensors');
    assert.equal((await runSoup(['uniform', run, '-o', file])).code, 0);
    const printed = await runSoup(['card', file]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(
      printed.stdout,
      /^---\ntags:\n- model-soup\n- merge\n- uniform-soup\nlibrary_name: transformers\nbase_model: google-bert\/bert-base-uncased\n---\n\n# single\n/,
    );
    assert.doesNotMatch(printed.stdout, /Config and tokenizer files from/, 'a single file carries no config files');
    const json = JSON.parse((await runSoup(['card', file, '--json'])).stdout);
    assert.equal(json.card, printed.stdout);
    assert.deepEqual(json.recipe.command, ['uniform', run, '-o', '{output}'], "the soup's bytes do not depend on where it was written");
    assert.ok(json.card.includes(`soup uniform ${run} -o ${file}\n`));
  });

  it('says when soup card is given a checkpoint that soup did not make', async () => {
    const plain = await writeSafetensorsFile(path.join(dir, 'plain.safetensors'), mlpTensors(1));
    const result = await runSoup(['card', plain]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, `soup: error: ${plain}: has no soup recipe in its metadata (key soup.recipe), so it was not made by soup\n`);
  });
});
