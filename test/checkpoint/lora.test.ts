import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { cp, mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../src/checkpoint/discover.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const LORA = fileURLToPath(new URL('../../../fixtures/lora', import.meta.url));
const expected = JSON.parse(readFileSync(path.join(LORA, 'expected.json'), 'utf8')) as Record<string, Record<string, number[]>>;
const base = path.join(LORA, 'base');

describe('base+adapter references', () => {
  for (const adapter of Object.keys(expected)) {
    it(`applies ${adapter} on read as PEFT merges it (W + scaling B A in float64, rounded once to float32)`, async () => {
      const [ingredient] = await discoverIngredients([`${base}+${path.join(LORA, adapter)}`]);
      assert.equal(ingredient!.name, `base+${adapter}`);
      const [checkpoint] = await openAll([ingredient!]);
      try {
        for (const [name, values] of Object.entries(expected[adapter]!)) {
          assert.deepEqual([...(await checkpoint!.readFloats(name))], values.map(Math.fround), name);
          assert.deepEqual([...(await checkpoint!.readFloatRange(name, 1, 2))], values.slice(1, 3).map(Math.fround), name);
        }
        assert.ok(checkpoint!.files.some((file) => file.endsWith('adapter_model.safetensors')));
      } finally {
        await closeAll([checkpoint!]);
      }
    });
  }

  it('names the adapter file and module whose factors do not fit the base', async () => {
    const dir = await tempDir();
    const adapter = path.join(dir, 'bad');
    await cp(path.join(LORA, 'adapter-qv'), adapter, { recursive: true });
    await writeSafetensorsFile(path.join(adapter, 'adapter_model.safetensors'), {
      'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight': { dtype: 'F32', shape: [2, 5], values: Array(10).fill(0) },
      'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight': { dtype: 'F32', shape: [6, 2], values: Array(12).fill(0) },
    });
    const ingredients = await discoverIngredients([`${base}+${adapter}`]);
    await assert.rejects(openAll(ingredients), {
      message: `${path.join(adapter, 'adapter_model.safetensors')}: LoRA factors of model.layers.0.self_attn.q_proj ([6, 2] x [2, 5]) do not fit "model.layers.0.self_attn.q_proj.weight" [6, 4]`,
    });
  });

  it('refuses a folder without adapter_config.json, and DoRA adapters', async () => {
    const dir = await tempDir();
    await mkdir(path.join(dir, 'empty'));
    await assert.rejects(openAll(await discoverIngredients([`${base}+${path.join(dir, 'empty')}`])), {
      message: `${path.join(dir, 'empty')}: not a PEFT adapter folder (no adapter_config.json)`,
    });
    const dora = path.join(dir, 'dora');
    await cp(path.join(LORA, 'adapter-fifo'), dora, { recursive: true });
    await writeFile(path.join(dora, 'adapter_config.json'), JSON.stringify({ r: 2, lora_alpha: 2, use_dora: true }));
    await assert.rejects(openAll(await discoverIngredients([`${base}+${dora}`])), {
      message: `${path.join(dora, 'adapter_config.json')}: use_dora: DoRA adapters are not supported (only plain LoRA)`,
    });
  });
});
