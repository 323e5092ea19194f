import assert from 'node:assert/strict';
import { mkdir, readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../src/checkpoint/discover.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { PytorchFile } from '../../src/checkpoint/pytorch/reader.js';
import { CandidateWriter } from '../../src/eval/candidate-folder.js';
import { ingredientWeights } from '../../src/weights/candidate.js';
import { tempDir } from '../helpers/files.js';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const dir = await tempDir();

async function open(input: string) {
  return (await openAll(await discoverIngredients([input])))[0]!;
}

async function workDir(name: string): Promise<string> {
  const folder = path.join(dir, name);
  await mkdir(folder);
  return folder;
}

describe('CandidateWriter', () => {
  it("writes a model-folder ingredient's candidate as a folder with its config, weights in its format, and removes it", async () => {
    const checkpoint = await open(path.join(fixtures, 'trainer-sweep', 'ft-lr3e-2-s3', 'checkpoint-20'));
    const work = await workDir('safetensors');
    const written = await new CandidateWriter(checkpoint, work).write(ingredientWeights(checkpoint));
    assert.equal(path.dirname(written.ckpt), work);
    assert.match(path.basename(written.ckpt), /^soup-candidate-\d+-[0-9a-f]{8}$/);
    assert.equal(written.ckptFile, path.join(written.ckpt, 'model.safetensors'));
    // Only what from_pretrained reads: never optimizer.pt, trainer_state.json or the other training state.
    assert.deepEqual(await readdir(written.ckpt), ['config.json', 'model.safetensors']);
    assert.equal(
      await readFile(path.join(written.ckpt, 'config.json'), 'utf8'),
      await readFile(path.join(path.dirname(checkpoint.path), 'config.json'), 'utf8'),
    );
    const copy = await SafetensorsFile.open(written.ckptFile);
    for (const tensor of checkpoint.tensors()) assert.deepEqual(await copy.readFloats(tensor.name), await checkpoint.readFloats(tensor.name));
    await copy.close();
    await written.remove();
    assert.deepEqual(await readdir(work), []);
    await closeAll([checkpoint]);
  });

  it('keeps a pytorch_model.bin folder a pytorch_model.bin folder', async () => {
    const checkpoint = await open(path.join(fixtures, 'torch', 'hf-single'));
    const work = await workDir('torch');
    const written = await new CandidateWriter(checkpoint, work).write(ingredientWeights(checkpoint));
    assert.deepEqual(await readdir(written.ckpt), ['config.json', 'pytorch_model.bin']);
    assert.equal(written.ckptFile, path.join(written.ckpt, 'pytorch_model.bin'));
    const copy = await PytorchFile.open(written.ckptFile);
    assert.deepEqual(
      copy.tensors().map((tensor) => tensor.name),
      checkpoint.tensors().map((tensor) => tensor.name),
    );
    await copy.close();
    await written.remove();
    assert.deepEqual(await readdir(work), []);
    await closeAll([checkpoint]);
  });

  it("writes a loose file's candidate as one file of its format, which {ckpt} and {ckpt_file} both name", async () => {
    const checkpoint = await open(path.join(fixtures, 'torch', 'runs', 'run-1.pt'));
    const work = await workDir('loose');
    const written = await new CandidateWriter(checkpoint, work).write(ingredientWeights(checkpoint));
    assert.match(written.ckpt, /soup-candidate-\d+-[0-9a-f]{8}\.pt$/);
    assert.equal(written.ckptFile, written.ckpt);
    await written.remove();
    assert.deepEqual(await readdir(work), []);
    await closeAll([checkpoint]);
  });
});
