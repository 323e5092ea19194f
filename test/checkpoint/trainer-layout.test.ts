import assert from 'node:assert/strict';
import { cp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { discoverIngredients } from '../../src/checkpoint/discover.js';
import { isTrainingStateFile } from '../../src/checkpoint/trainer-layout.js';
import { tempDir } from '../helpers/files.js';

const sweep = new URL('../../../fixtures/trainer-sweep/', import.meta.url).pathname.replace(/\/$/, '');
const dir = await tempDir();

async function names(inputs: string[], options: Parameters<typeof discoverIngredients>[1] = {}): Promise<{ names: string[]; warnings: string[] }> {
  const warnings: string[] = [];
  const found = await discoverIngredients(inputs, { ...options, onWarning: (message) => warnings.push(message) });
  return { names: found.map((ingredient) => ingredient.name), warnings };
}

describe('Trainer runs and sweeps', () => {
  it("takes a run's final weights by default and says which checkpoints it left out and how to pick them", async () => {
    const run = path.join(sweep, 'ft-lr5e-2-s1');
    assert.deepEqual(await names([run]), {
      names: ['ft-lr5e-2-s1'],
      warnings: [
        `${run} holds final weights and checkpoint-10, checkpoint-20, checkpoint-30: using the final weights (--checkpoints last, best or all picks checkpoints instead)`,
      ],
    });
  });

  it('picks the last, the best (trainer_state.json) or every checkpoint of a run, and its final weights on request', async () => {
    const run = path.join(sweep, 'ft-lr5e-2-s1');
    assert.deepEqual(await names([run], { checkpoints: 'last' }), { names: ['checkpoint-30'], warnings: [] });
    assert.deepEqual(await names([run], { checkpoints: 'best' }), { names: ['checkpoint-10'], warnings: [] });
    assert.deepEqual(await names([run], { checkpoints: 'all' }), { names: ['checkpoint-10', 'checkpoint-20', 'checkpoint-30'], warnings: [] });
    assert.deepEqual(await names([run], { checkpoints: 'final' }), { names: ['ft-lr5e-2-s1'], warnings: [] });
  });

  it('soups every checkpoint of a run without final weights, never its training_args.bin', async () => {
    assert.deepEqual(await names([path.join(sweep, 'ft-lr1e-2-s2')]), { names: ['checkpoint-10', 'checkpoint-20'], warnings: [] });
  });

  it('walks a sweep of runs, naming checkpoints by their run, and leaves out the --model export lying in it', async () => {
    const all = await names([sweep], { exclude: [path.join(sweep, 'model.onnx')] });
    assert.deepEqual(all.names, [
      'ft-lr1e-2-s2/checkpoint-10',
      'ft-lr1e-2-s2/checkpoint-20',
      'ft-lr3e-2-s3/checkpoint-10',
      'ft-lr3e-2-s3/checkpoint-20',
      'ft-lr5e0-s4/checkpoint-10',
      'ft-lr5e0-s4/checkpoint-20',
      'ft-lr5e-2-s1',
    ]);
    assert.deepEqual(all.warnings, [
      `${path.join(sweep, 'ft-lr5e-2-s1')} holds final weights and checkpoint-10, checkpoint-20, checkpoint-30: using the final weights (--checkpoints last, best or all picks checkpoints instead)`,
      `${sweep}: every checkpoint of runs ft-lr1e-2-s2, ft-lr3e-2-s3, ft-lr5e0-s4 is an ingredient (6 in all; --checkpoints last or best takes one per run)`,
    ]);
    const best = await names([sweep], { exclude: [path.join(sweep, 'model.onnx')], checkpoints: 'best' });
    // The diverged run's trainer_state.json holds a bare NaN (as the Trainer writes it) and is still read.
    assert.deepEqual(best, {
      names: ['ft-lr1e-2-s2/checkpoint-20', 'ft-lr3e-2-s3/checkpoint-20', 'ft-lr5e0-s4/checkpoint-10', 'ft-lr5e-2-s1/checkpoint-10'],
      warnings: [],
    });
    assert.match(await readFile(path.join(sweep, 'ft-lr5e0-s4', 'checkpoint-20', 'trainer_state.json'), 'utf8'), /"best_metric": NaN/);
  });

  it('takes the ONNX export as an ingredient only when it is not --model, saying so, and refuses it named as both', async () => {
    const found = await names([sweep], { checkpoints: 'last' });
    assert.ok(found.names.includes('model'));
    // Souped silently, an export of one run would weigh that run twice.
    assert.deepEqual(found.warnings, [
      `${sweep}: model.onnx beside the runs is souped with them (an export to score with? pass it as --model, which leaves it out, or pass the runs alone)`,
    ]);
    await assert.rejects(discoverIngredients([path.join(sweep, 'model.onnx')], { exclude: [path.join(sweep, 'model.onnx')] }), {
      message: `${path.join(sweep, 'model.onnx')} is the --model export, so it cannot also be an ingredient`,
    });
  });

  it('refuses --checkpoints final for a run that saved none, naming what it has', async () => {
    const run = path.join(sweep, 'ft-lr1e-2-s2');
    await assert.rejects(discoverIngredients([run], { checkpoints: 'final' }), {
      name: 'UsageError',
      message: `${run} has no final weights (model.safetensors or pytorch_model.bin), only checkpoint-10, checkpoint-20`,
      hint: 'pick checkpoints with --checkpoints last, best or all',
    });
  });

  it('says when trainer_state.json names no best checkpoint, or one the run no longer holds', async () => {
    const run = path.join(dir, 'no-best');
    await cp(path.join(sweep, 'ft-lr1e-2-s2'), run, { recursive: true });
    const state = path.join(run, 'checkpoint-20', 'trainer_state.json');
    await writeFile(state, JSON.stringify({ best_model_checkpoint: null, best_metric: null, global_step: 20 }));
    await assert.rejects(discoverIngredients([run], { checkpoints: 'best' }), { message: `${state}: names no best_model_checkpoint` });
    await writeFile(state, JSON.stringify({ best_model_checkpoint: '/elsewhere/out/checkpoint-5' }));
    await assert.rejects(discoverIngredients([run], { checkpoints: 'best' }), {
      message: `${state}: best_model_checkpoint is checkpoint-5, which ${run} no longer holds (it has checkpoint-10, checkpoint-20)`,
    });
  });

  it('never reads training state as a checkpoint: named directly it is refused, in a folder it is skipped', async () => {
    for (const file of ['optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'training_args.bin']) {
      const target = path.join(sweep, 'ft-lr1e-2-s2', 'checkpoint-10', file);
      await assert.rejects(discoverIngredients([target]), {
        message: `${target}: is training state saved beside the weights (to resume training), not model weights`,
        hint: 'pass the checkpoint folder (it holds model.safetensors or pytorch_model.bin), or the weights file itself',
      });
    }
    const stateOnly = path.join(dir, 'state-only');
    await mkdir(stateOnly);
    for (const file of ['optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'training_args.bin', 'config.json'])
      await cp(path.join(sweep, 'ft-lr1e-2-s2', 'checkpoint-10', file), path.join(stateOnly, file));
    await assert.rejects(discoverIngredients([stateOnly]), {
      message: `${stateOnly}: holds training state (optimizer, scheduler, RNG state, training arguments) but no model weights (model.safetensors, pytorch_model.bin, ...)`,
    });
    await rm(stateOnly, { recursive: true });
  });

  it("knows the Trainer's, Accelerate's and DeepSpeed-style state files from weights", () => {
    for (const name of [
      'optimizer.pt',
      'optimizer.bin',
      'scheduler.pt',
      'scaler.pt',
      'rng_state.pth',
      'rng_state_3.pth',
      'training_args.bin',
      'random_states_0.pkl',
    ])
      assert.ok(isTrainingStateFile(name), name);
    for (const name of ['pytorch_model.bin', 'model.pt', 'optimizer_step.pt', 'run-1.ckpt']) assert.ok(!isTrainingStateFile(name), name);
  });
});
