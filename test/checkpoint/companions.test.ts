import assert from 'node:assert/strict';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { collectCompanions, describeModel, isCompanionFile, modelFolderOf } from '../../src/checkpoint/companions.js';
import { InputError } from '../../src/errors.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();

/** A Trainer checkpoint folder: weights, loading files, training state. */
async function trainerFolder(name: string, files: Record<string, string>): Promise<{ name: string; path: string }> {
  const folder = path.join(dir, name);
  await mkdir(folder, { recursive: true });
  for (const [file, text] of Object.entries({ 'model.safetensors': 'weights', 'optimizer.pt': 'adam', 'trainer_state.json': '{}', ...files })) {
    await writeFile(path.join(folder, file), text);
  }
  return { name, path: path.join(folder, 'model.safetensors') };
}

describe('companion files', () => {
  it("refuses a config or tokenizer that links out of the ingredient folder, and follows a cache snapshot's links to its own blobs", async () => {
    const secret = path.join(dir, 'id_rsa');
    await writeFile(secret, 'PRIVATE KEY');
    const a = await trainerFolder('linked-out', { 'config.json': '{}' });
    await symlink(secret, path.join(dir, 'linked-out', 'tokenizer.json'));
    await assert.rejects(collectCompanions([a]), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.equal(
        error.message,
        `${path.join(dir, 'linked-out', 'tokenizer.json')}: is a link that points outside the checkpoint folder; soup reads and copies nothing from outside an ingredient`,
      );
      return true;
    });
    const repo = path.join(dir, 'hub', 'models--org--bert');
    const snapshot = path.join(repo, 'snapshots', '0123abc');
    await mkdir(path.join(repo, 'blobs'), { recursive: true });
    await mkdir(snapshot, { recursive: true });
    await writeFile(path.join(repo, 'blobs', 'aaaa'), '{"model_type":"bert"}');
    await symlink('../../blobs/aaaa', path.join(snapshot, 'config.json'));
    await writeFile(path.join(snapshot, 'model.safetensors'), 'weights');
    const found = await collectCompanions([{ name: 'bert', path: path.join(snapshot, 'model.safetensors') }]);
    assert.deepEqual([...found.files.keys()], ['config.json']);
    // A link from one cached model into another model's blobs is outside, like any other.
    await writeFile(path.join(dir, 'hub', 'other-blob'), '{}');
    await symlink('../../../other-blob', path.join(snapshot, 'vocab.json'));
    await assert.rejects(
      collectCompanions([{ name: 'bert', path: path.join(snapshot, 'model.safetensors') }]),
      /vocab\.json: is a link that points outside the checkpoint folder/,
    );
  });

  it('takes what a loader reads and leaves training state and other weights', () => {
    for (const name of [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
      'vocab.txt',
      'vocab.json',
      'merges.txt',
      'tokenizer.model',
      'added_tokens.json',
      'chat_template.jinja',
      'preprocessor_config.json',
      'qwen.tiktoken',
      'modeling_custom.py',
    ]) {
      assert.ok(isCompanionFile(name), name);
    }
    for (const name of [
      'optimizer.pt',
      'scheduler.pt',
      'rng_state_0.pth',
      'rng_state.pth',
      'training_args.bin',
      'trainer_state.json',
      'pytorch_model.bin',
      'model.safetensors',
      'tf_model.h5',
      'README.md',
      'all_results.json',
      'train.py',
    ]) {
      assert.ok(!isCompanionFile(name), name);
    }
  });

  it('finds the model folder of a Hugging Face weights file, and none for a loose file', async () => {
    assert.equal(await modelFolderOf({ path: path.join(dir, 'x', 'model.safetensors') }), path.join(dir, 'x'));
    assert.equal(await modelFolderOf({ path: path.join(dir, 'runs', 'run-a.safetensors') }), undefined);
    assert.equal(await modelFolderOf({ path: dir }), dir);
  });

  it('names the files that differ between ingredients and takes them from the first, or from --copy-from', async () => {
    const a = await trainerFolder('checkpoint-500', { 'config.json': '{"model_type":"bert"}', 'tokenizer.json': '{"v":1}', 'vocab.txt': 'a\n' });
    const b = await trainerFolder('checkpoint-1000', {
      'config.json': '{"model_type":"bert"}',
      'tokenizer.json': '{"v":2}',
      'vocab.txt': 'a\n',
      'generation_config.json': '{}',
    });
    const first = await collectCompanions([a, b]);
    assert.equal(first.from, 'checkpoint-500');
    assert.deepEqual([...first.files.keys()], ['config.json', 'tokenizer.json', 'vocab.txt']);
    assert.equal(first.files.get('tokenizer.json'), path.join(dir, 'checkpoint-500', 'tokenizer.json'));
    assert.deepEqual(first.differing, ['generation_config.json', 'tokenizer.json']);
    assert.deepEqual(first.warnings, [
      'generation_config.json, tokenizer.json differ between ingredients; the soup takes them from checkpoint-500 (--copy-from NAME picks another ingredient)',
    ]);
    const chosen = await collectCompanions([a, b], 'checkpoint-1000');
    assert.equal(chosen.files.get('tokenizer.json'), path.join(dir, 'checkpoint-1000', 'tokenizer.json'));
    assert.deepEqual(chosen.warnings, ['generation_config.json, tokenizer.json differ between ingredients; the soup takes them from checkpoint-1000']);
  });

  it('says nothing when the files agree, and refuses a --copy-from that is not a model folder', async () => {
    const a = await trainerFolder('same-1', { 'config.json': '{}' });
    const b = await trainerFolder('same-2', { 'config.json': '{}' });
    assert.deepEqual((await collectCompanions([a, b])).warnings, []);
    await assert.rejects(collectCompanions([a, b], 'same-3'), { message: '--copy-from: no ingredient is named "same-3" (ingredients: same-1, same-2)' });
    const loose = { name: 'loose', path: path.join(dir, 'loose.safetensors') };
    await assert.rejects(collectCompanions([a, loose], 'loose'), {
      message: '--copy-from: loose is a single file, not a model folder, so it has no config or tokenizer files to copy',
    });
    assert.deepEqual(await collectCompanions([loose]), { from: undefined, files: new Map(), differing: [], warnings: [] });
  });

  it('reads the base model and library from config.json, but not a local path', async () => {
    const hub = await trainerFolder('hub', { 'config.json': '{"_name_or_path":"google-bert/bert-base-uncased","model_type":"bert"}' });
    assert.deepEqual(await describeModel(await collectCompanions([hub])), { baseModel: 'google-bert/bert-base-uncased', libraryName: 'transformers' });
    const local = await trainerFolder('local', { 'config.json': '{"_name_or_path":"/home/me/models/bert","architectures":["BertModel"]}' });
    assert.deepEqual(await describeModel(await collectCompanions([local])), { libraryName: 'transformers' });
    const broken = await trainerFolder('broken', { 'config.json': '{"_name_or_path": "bert' });
    assert.deepEqual(await describeModel(await collectCompanions([broken])), {});
  });
});
