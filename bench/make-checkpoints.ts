import { mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { encodeSafetensorsHeader } from '../src/checkpoint/safetensors.js';
import type { OutputTensor } from '../src/checkpoint/types.js';

/**
 * The tensors of a small transformer (about 64 MB of float32): an embedding, four blocks of
 * attention and MLP weights with their biases and layer norms, and a head: a realistic mix of
 * large matrices and small vectors.
 */
export function transformerTensors(): OutputTensor[] {
  const d = 512;
  const tensors: OutputTensor[] = [{ name: 'embed.weight', shape: [8000, d], dtype: 'F32' }];
  for (let layer = 0; layer < 4; layer++) {
    const p = `layers.${layer}`;
    tensors.push(
      { name: `${p}.ln1.weight`, shape: [d], dtype: 'F32' },
      { name: `${p}.ln1.bias`, shape: [d], dtype: 'F32' },
      { name: `${p}.attn.qkv.weight`, shape: [3 * d, d], dtype: 'F32' },
      { name: `${p}.attn.qkv.bias`, shape: [3 * d], dtype: 'F32' },
      { name: `${p}.attn.out.weight`, shape: [d, d], dtype: 'F32' },
      { name: `${p}.attn.out.bias`, shape: [d], dtype: 'F32' },
      { name: `${p}.ln2.weight`, shape: [d], dtype: 'F32' },
      { name: `${p}.ln2.bias`, shape: [d], dtype: 'F32' },
      { name: `${p}.mlp.up.weight`, shape: [4 * d, d], dtype: 'F32' },
      { name: `${p}.mlp.up.bias`, shape: [4 * d], dtype: 'F32' },
      { name: `${p}.mlp.down.weight`, shape: [d, 4 * d], dtype: 'F32' },
      { name: `${p}.mlp.down.bias`, shape: [d], dtype: 'F32' },
    );
  }
  tensors.push({ name: 'head.weight', shape: [1000, d], dtype: 'F32' }, { name: 'head.bias', shape: [1000], dtype: 'F32' });
  return tensors;
}

/** Writes `count` checkpoints of those tensors with different pseudo-random values. */
export async function makeCheckpoints(folder: string, count: number): Promise<string[]> {
  await mkdir(folder, { recursive: true });
  const tensors = transformerTensors();
  const files: string[] = [];
  for (let k = 0; k < count; k++) {
    const file = path.join(folder, `run-${String(k).padStart(2, '0')}.safetensors`);
    const handle = await open(file, 'w');
    await handle.write(encodeSafetensorsHeader(tensors, { format: 'pt' }));
    let state = (k + 1) * 2654435761;
    for (const tensor of tensors) {
      const values = new Float32Array(tensor.shape.reduce((a, b) => a * b, 1));
      for (let i = 0; i < values.length; i++) {
        state = (state * 1664525 + 1013904223) >>> 0;
        values[i] = (state / 4294967296 - 0.5) * 0.1;
      }
      await handle.write(new Uint8Array(values.buffer));
    }
    await handle.close();
    files.push(file);
  }
  return files;
}
