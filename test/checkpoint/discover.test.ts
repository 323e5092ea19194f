import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { discoverIngredients } from '../../src/checkpoint/discover.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

describe('discoverIngredients', () => {
  it('finds checkpoints in a folder, skips other files, and sorts them by name', async () => {
    const folder = path.join(dir, 'sweep');
    await writeSafetensorsFile(path.join(folder, 'run-b.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(folder, 'run-a.safetensors'), mlpTensors(2));
    await writeSafetensorsFile(path.join(folder, 'run-c', 'model.safetensors'), mlpTensors(3));
    await mkdir(path.join(folder, 'run-d'));
    await writeFile(path.join(folder, 'run-d', 'model.json'), '{}');
    await writeFile(path.join(folder, 'notes.txt'), 'not a checkpoint');
    await mkdir(path.join(folder, 'logs'));
    const found = await discoverIngredients([folder]);
    assert.deepEqual(
      found.map((i) => [i.name, path.relative(folder, i.path), i.format]),
      [
        ['run-a', 'run-a.safetensors', 'safetensors'],
        ['run-b', 'run-b.safetensors', 'safetensors'],
        ['run-c', path.join('run-c', 'model.safetensors'), 'safetensors'],
        ['run-d', 'run-d', 'tfjs'],
      ],
    );
  });

  it('orders Hugging Face Trainer checkpoints by step, not by text', async () => {
    const folder = path.join(dir, 'trainer');
    for (const step of [1500, 500, 1000]) await writeSafetensorsFile(path.join(folder, `checkpoint-${step}`, 'model.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(dir, 'loose', 'run-10.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(dir, 'loose', 'run-2.safetensors'), mlpTensors(1));
    const found = await discoverIngredients([folder, path.join(dir, 'loose')]);
    assert.deepEqual(
      found.map((i) => i.name),
      ['checkpoint-500', 'checkpoint-1000', 'checkpoint-1500', 'run-2', 'run-10'],
    );
  });

  it('takes several paths, and a model.json path as its folder', async () => {
    const a = await writeSafetensorsFile(path.join(dir, 'paths', 'z.safetensors'), mlpTensors(1));
    await mkdir(path.join(dir, 'paths', 'tf'));
    await writeFile(path.join(dir, 'paths', 'tf', 'model.json'), '{}');
    const found = await discoverIngredients([a, path.join(dir, 'paths', 'tf', 'model.json')]);
    assert.deepEqual(
      found.map((i) => i.name),
      ['tf', 'z'],
    );
  });

  it('says which path is missing', async () => {
    await assert.rejects(discoverIngredients([path.join(dir, 'nope')]), { message: `${path.join(dir, 'nope')}: no such file or directory` });
  });

  it('says when a folder holds no checkpoints', async () => {
    await mkdir(path.join(dir, 'empty'));
    await assert.rejects(
      discoverIngredients([path.join(dir, 'empty')]),
      /empty: no checkpoints found \(expected \.safetensors, \.onnx, \.pt, \.pth, \.bin or \.ckpt files/,
    );
  });

  it('tells ingredients of the same name apart by their folders, and refuses what no folder tells apart', async () => {
    const one = await writeSafetensorsFile(path.join(dir, 'x', 'same.safetensors'), mlpTensors(1));
    const two = await writeSafetensorsFile(path.join(dir, 'y', 'same.safetensors'), mlpTensors(1));
    assert.deepEqual(
      (await discoverIngredients([two, one])).map((i) => i.name),
      ['x/same', 'y/same'],
    );
    await assert.rejects(discoverIngredients([one, one]), { message: `${one} is given twice` });
    const torch = path.join(dir, 'x', 'same.pt');
    await writeFile(torch, 'not read');
    await assert.rejects(discoverIngredients([one, torch]), { message: `two ingredients are named "same": ${one} and ${torch}` });
  });

  it('refuses a file that is not a checkpoint', async () => {
    await writeFile(path.join(dir, 'weights.h5'), 'x');
    await assert.rejects(discoverIngredients([path.join(dir, 'weights.h5')]), {
      message: `${path.join(dir, 'weights.h5')}: not a checkpoint (expected a .safetensors, .onnx, .pt, .pth, .bin or .ckpt file, model.json or a shard index)`,
    });
  });
});
