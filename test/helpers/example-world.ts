import { execFile } from 'node:child_process';
import { copyFile, mkdir, readFile, readdir, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { SOUP_BIN, TEST_CACHE_HOME } from './cli.js';
import { type RawTensor, writeSafetensorsFile } from './files.js';

const run = promisify(execFile);
const PYTHON = '/usr/bin/python3';

/** The repository root (this file runs from dist/test/helpers/). */
export const REPO = new URL('../../../', import.meta.url).pathname.replace(/\/$/, '');
const FIXTURES = path.join(REPO, 'fixtures');
const INGREDIENTS = path.join(FIXTURES, 'ingredients');

/**
 * A user's evaluation script for the fixtures' Fashion-MNIST network (dense_1: 784 -> 64, relu;
 * dense_2: 64 -> 10), as the examples' `python eval.py {ckpt}` expects one: it loads the candidate
 * soup hands it (a .safetensors file, a model folder of model.safetensors or pytorch_model.bin, or a
 * TF.js folder), scores it on DATA (.npz or .jsonl; val.npz by default) and prints its metrics as JSON
 * on its last line.
 */
const EVAL_PY = `"""Scores a checkpoint of the Fashion-MNIST MLP and prints its metrics as JSON.

    python eval.py [--weights] CKPT [DATA]
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, 'rb') as f:
        size = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    header.pop('__metadata__', None)
    return {name: np.frombuffer(data[a:b], dtype='<f4').reshape(entry['shape'])
            for name, entry in header.items() for a, b in [entry['data_offsets']]}


def read_tfjs(folder):
    with open(os.path.join(folder, 'model.json')) as f:
        manifest = json.load(f)['weightsManifest']
    weights = {}
    for group in manifest:
        data = b''.join(open(os.path.join(folder, name), 'rb').read() for name in group['paths'])
        offset = 0
        for entry in group['weights']:
            count = int(np.prod(entry['shape']))
            weights[entry['name']] = np.frombuffer(data, '<f4', count, offset).reshape(entry['shape'])
            offset += 4 * count
    return weights


def load(ckpt):
    if not os.path.isdir(ckpt):
        return read_safetensors(ckpt)
    if os.path.exists(os.path.join(ckpt, 'model.safetensors')):
        return read_safetensors(os.path.join(ckpt, 'model.safetensors'))
    if os.path.exists(os.path.join(ckpt, 'pytorch_model.bin')):
        import torch
        state = torch.load(os.path.join(ckpt, 'pytorch_model.bin'), weights_only=True)
        return {name: tensor.numpy() for name, tensor in state.items()}
    return read_tfjs(ckpt)


def load_data(path):
    if path.endswith('.jsonl'):
        rows = [json.loads(line) for line in open(path) if line.strip()]
        return np.array([row['x'] for row in rows], dtype=np.float32), np.array([row['y'] for row in rows])
    data = np.load(path)
    x = data['x'].reshape(len(data['y']), -1).astype(np.float32)
    return (x / 255 if data['x'].dtype == np.uint8 else x), data['y']


def main():
    args = [arg for arg in sys.argv[1:] if arg != '--weights']
    w = load(args[0])
    x, y = load_data(args[1] if len(args) > 1 else 'val.npz')
    hidden = np.maximum(x @ w['dense_1/kernel'] + w['dense_1/bias'], 0)
    logits = hidden @ w['dense_2/kernel'] + w['dense_2/bias']
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = float(-log_probs[np.arange(len(y)), y].mean())
    accuracy = float((logits.argmax(axis=1) == y).mean())
    # The reward of answering with a class drawn from the model's output: 1 if right, else 0.
    reward = float(np.exp(log_probs[np.arange(len(y)), y]).mean())
    print(json.dumps({'accuracy': accuracy, 'loss': loss, 'eval_accuracy': accuracy, 'eval_loss': loss, 'eval_reward': reward}))


main()
`;

/** The validation IDX files as val.npz (float32 in [0, 1]), and some of them as JSON lines for eval.py. */
const DATA_PY = `import gzip, json, sys
import numpy as np

def idx(path, offset):
    with gzip.open(path) as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)

src, out = sys.argv[1], sys.argv[2]
x = idx(f'{src}/val/val-images-idx3-ubyte.gz', 16).reshape(-1, 28, 28)
y = idx(f'{src}/val/val-labels-idx1-ubyte.gz', 8).astype(np.int64)
np.savez(f'{out}/val.npz', x=(x / 255).astype(np.float32), y=y)

def jsonl(path, x, y, count):
    with open(path, 'w') as f:
        for i in range(count):
            f.write(json.dumps({'x': [round(v / 255, 4) for v in x[i].reshape(-1).tolist()], 'y': int(y[i])}) + '\\n')

jsonl(f'{out}/val.jsonl', x, y, 200)
shifted = np.load(f'{src}/test-shifted.npz')
jsonl(f'{out}/ood.jsonl', shifted['x'], shifted['y'], 200)
`;

/**
 * Drops srun's own options and runs the command here: the examples show \`srun --gres=gpu:1 python
 * eval.py {ckpt}\` inside --eval-cmd, and these tests check that the rest of such a line works without
 * starting Slurm (the Slurm path itself, --executor slurm against a real Slurm, is test/cli/slurm.test.ts).
 */
const SRUN_SHIM = `#!/bin/sh
while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done
exec "$@"
`;

/** An ingredient's TF.js weights (float32, in the manifest's order) as safetensors tensors. */
async function tfjsTensors(folder: string): Promise<Record<string, RawTensor>> {
  const manifest = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8')).weightsManifest as {
    paths: string[];
    weights: { name: string; shape: number[] }[];
  }[];
  const tensors: Record<string, RawTensor> = {};
  for (const group of manifest) {
    const data = Buffer.concat(await Promise.all(group.paths.map((name) => readFile(path.join(folder, name)))));
    let offset = 0;
    for (const weight of group.weights) {
      const size = 4 * weight.shape.reduce((a, b) => a * b, 1);
      tensors[weight.name] = { dtype: 'F32', shape: weight.shape, bytes: new Uint8Array(data.subarray(offset, offset + size)) };
      offset += size;
    }
  }
  return tensors;
}

async function safetensorsOf(ingredient: string, file: string): Promise<void> {
  await writeSafetensorsFile(file, await tfjsTensors(path.join(INGREDIENTS, ingredient)));
}

/** A Hugging Face style model folder (model.safetensors, config.json) of one fixture ingredient. */
async function modelFolder(ingredient: string, folder: string): Promise<void> {
  await safetensorsOf(ingredient, path.join(folder, 'model.safetensors'));
  await writeFile(path.join(folder, 'config.json'), `${JSON.stringify({ model_type: 'mlp', in_features: 784, hidden_size: 64, num_labels: 10 })}\n`);
}

const mergeConfig = (method: string, models: readonly string[], base: string, parameters: string, global = ''): string =>
  `merge_method: ${method}\nbase_model: ${base}\nmodels:\n${models.map((model) => `  - model: ${model}\n    parameters:\n${parameters}`).join('')}${global}dtype: float32\n`;

/** Runs soup to make a soup the examples read (it must be a real soup: `card` reads its recipe). */
async function soup(world: string, args: string[]): Promise<void> {
  await run(process.execPath, [SOUP_BIN, ...args, '--quiet'], { cwd: world, env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME } });
}

/** Folders of pytorch_model.bin (and config.json), as transformers saved them before safetensors. */
const TORCH_PY = `import json, os, shutil, sys
import numpy as np
import torch

world = sys.argv[1]
for name in ['lr1e-4-s1', 'lr3e-4-s2']:
    src, out = os.path.join(world, 'runs', name), os.path.join(world, 'hf-runs', name)
    os.makedirs(out)
    with open(os.path.join(src, 'model.safetensors'), 'rb') as f:
        size = int.from_bytes(f.read(8), 'little')
        header = json.loads(f.read(size))
        data = f.read()
    header.pop('__metadata__', None)
    state = {key: torch.from_numpy(np.frombuffer(data[a:b], dtype='<f4').reshape(entry['shape']).copy())
             for key, entry in header.items() for a, b in [entry['data_offsets']]}
    torch.save(state, os.path.join(out, 'pytorch_model.bin'))
    shutil.copy(os.path.join(src, 'config.json'), out)
`;

/**
 * A Hugging Face Trainer sweep as the documents show one: sweep/ft-lr1e-3-s{1,2}/checkpoint-{141,282}
 * model folders, each run's final weights and its trainer_state.json (best checkpoint: 141), and the
 * network's ONNX export as sweep/model.onnx. The weights are fixture runs.
 */
async function trainerSweep(sweep: string): Promise<void> {
  const runs = { 'ft-lr1e-3-s1': ['lr1e-3-s4', 'lr1e-3-ls-s5'], 'ft-lr1e-3-s2': ['lr3e-4-s2', 'lr3e-4-e4-s6'] };
  for (const [run, [first, last]] of Object.entries(runs)) {
    const state = `${JSON.stringify({
      best_metric: 0.4521,
      best_model_checkpoint: `sweep/${run}/checkpoint-141`,
      global_step: 282,
      log_history: [
        { step: 141, eval_loss: 0.4521, eval_accuracy: 0.8375 },
        { step: 282, eval_loss: 0.4688, eval_accuracy: 0.8335 },
      ],
    })}\n`;
    for (const [step, ingredient] of [
      [141, first!],
      [282, last!],
    ] as const) {
      await modelFolder(ingredient, path.join(sweep, run, `checkpoint-${step}`));
      await writeFile(path.join(sweep, run, `checkpoint-${step}`, 'trainer_state.json'), state);
    }
    await modelFolder(last!, path.join(sweep, run));
    await writeFile(path.join(sweep, run, 'trainer_state.json'), state);
  }
  await symlink(path.join(FIXTURES, 'onnx', 'lr1e-4-s1.onnx'), path.join(sweep, 'model.onnx'));
}

/** The fixture runs ./runs holds as model folders (model.safetensors, config.json), as transformers saves them. */
const RUNS = ['lr1e-4-s1', 'lr3e-4-s2', 'lr3e-4-aug-s3', 'lr1e-3-s4'];

/**
 * The folder an ML user runs the examples in: every path the examples read exists and is real, made
 * from the fixtures (./ckpts is the fixture sweep, data/val its validation set, val.npz the same set
 * as an .npz, model.onnx and model.json its network, ties.yml a mergekit recipe over ./ckpts, eval.py
 * a scoring script, soup.safetensors a soup made by soup, ...). Each example runs in a sandbox of
 * links to these, without the paths that example writes.
 */
export async function buildWorld(world: string): Promise<void> {
  const link = (target: string, name: string): Promise<void> => symlink(target, path.join(world, name));
  await link(FIXTURES, 'fixtures');
  await link(path.join(REPO, 'bin'), 'bin');
  await mkdir(path.join(world, 'ckpts'));
  for (const name of await readdir(INGREDIENTS)) await symlink(path.join(INGREDIENTS, name), path.join(world, 'ckpts', name));
  await link(path.join(world, 'ckpts'), 'tfjs-runs');
  for (const name of RUNS) await modelFolder(name, path.join(world, 'runs', name));
  await mkdir(path.join(world, 'data'));
  for (const name of ['val', 'test.npz', 'test-shifted.npz', 'dataset.json']) await symlink(path.join(FIXTURES, 'data', name), path.join(world, 'data', name));
  await link(path.join(FIXTURES, 'data', 'images'), 'val-images');
  await link(path.join(FIXTURES, 'data', 'images'), 'photos');
  await run(PYTHON, ['-c', DATA_PY, path.join(FIXTURES, 'data'), world]);
  await copyFile(path.join(INGREDIENTS, 'lr1e-4-s1', 'model.json'), path.join(world, 'model.json'));
  await link(path.join(FIXTURES, 'onnx', 'lr1e-4-s1.onnx'), 'model.onnx');
  // The fixture sweep's pretrained start is not kept; its most conservative run stands in as the base.
  await safetensorsOf('lr1e-4-s1', path.join(world, 'base.safetensors'));
  await link(path.join(INGREDIENTS, 'lr1e-4-s1'), 'base');
  for (const [file, ingredient] of Object.entries({ a: 'lr1e-4-s1', 'run-a': 'lr1e-4-s1', b: 'lr3e-4-s2', 'run-b': 'lr3e-4-s2', tuned: 'lr3e-4-s2' })) {
    await safetensorsOf(ingredient, path.join(world, `${file}.safetensors`));
  }
  const merged = ['ckpts/lr3e-4-s2', 'ckpts/lr3e-4-aug-s3', 'ckpts/lr1e-3-s4', 'ckpts/lr3e-4-e4-s6'];
  await writeFile(
    path.join(world, 'ties.yml'),
    mergeConfig('ties', merged, 'base.safetensors', '      weight: 1\n      density: 0.5\n', 'parameters:\n  normalize: true\n'),
  );
  await writeFile(path.join(world, 'dare.yml'), mergeConfig('dare_ties', merged, 'base.safetensors', '      weight: 1\n      density: 0.5\n'));
  const onnx = ['fixtures/onnx/lr3e-4-s2.onnx', 'fixtures/onnx/lr3e-4-aug-s3.onnx', 'fixtures/onnx/lr1e-3-s4.onnx'];
  const ranges = '      weight: {min: 0, max: 1}\n      density: {min: 0.2, max: 1}\n';
  await writeFile(path.join(world, 'ties-search.yml'), mergeConfig('ties', onnx, 'fixtures/onnx/lr1e-4-s1.onnx', ranges));
  await writeFile(
    path.join(world, 'search.yml'),
    mergeConfig(
      'ties',
      RUNS.slice(1).map((name) => `runs/${name}`),
      'runs/lr1e-4-s1',
      ranges,
    ),
  );
  const linear = ['lr1e-4-s1', 'lr3e-4-s2', 'lr3e-4-aug-s3'].map(
    (name) => `  - model: fixtures/ingredients/${name}\n    parameters:\n      weight: {min: 0, max: 1}\n`,
  );
  await writeFile(path.join(world, 'evolve.yml'), `merge_method: linear\nmodels:\n${linear.join('')}parameters:\n  normalize: true\n`);
  await writeFile(path.join(world, 'eval.py'), EVAL_PY);
  await link(path.join(world, 'eval.py'), 'eval_hf.py');
  await trainerSweep(path.join(world, 'sweep'));
  await link(path.join(FIXTURES, 'torch', 'plain.pt'), 'run.pt');
  const bin = path.join(world, '.bin');
  await mkdir(bin);
  await symlink(SOUP_BIN, path.join(bin, 'soup'));
  await symlink(PYTHON, path.join(bin, 'python'));
  await writeFile(path.join(bin, 'srun'), SRUN_SHIM, { mode: 0o755 });
  // Soups that examples read, made by soup as a user would have made them before.
  await Promise.all([
    run(PYTHON, ['-c', TORCH_PY, world]),
    soup(world, ['greedy', 'fixtures/ingredients', '--val', 'fixtures/data/val', '-o', 'greedy-soup']),
    soup(world, ['uniform', 'ckpts', '-o', 'soup.safetensors']).then(() => soup(world, ['uniform', 'ckpts', '-o', 'rebuilt.safetensors'])),
    soup(world, ['uniform', 'ckpts', '-o', 'soup-a']).then(() => soup(world, ['uniform', 'ckpts', '-o', 'soup-b'])),
    soup(world, ['uniform', 'fixtures/onnx', '-o', 'soup.onnx']),
  ]);
  await link(path.join(world, 'greedy-soup'), 'soup');
  await link(path.join(world, 'soup.safetensors'), 'uniform-soup.safetensors');
  await link(path.join(world, 'soup.safetensors'), 'soup-a.safetensors');
  await link(path.join(world, 'rebuilt.safetensors'), 'soup-b.safetensors');
  const compare = [
    'compare',
    'fixtures/ingredients',
    '--val',
    'fixtures/data/val',
    '--test',
    'test=fixtures/data/test.npz',
    '--test',
    'shifted=fixtures/data/test-shifted.npz',
  ];
  const { stdout } = await run(process.execPath, [SOUP_BIN, ...compare, '--json'], {
    cwd: world,
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME },
  });
  await writeFile(path.join(world, 'soup-baseline.json'), stdout);
  await writeFile(path.join(world, 'yesterday.json'), stdout);
}
