import { mkdir, open, writeFile } from 'node:fs/promises';
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

/** Layers of the Llama-shaped bench model at full size: about 1.3 GB per ingredient in bf16. */
export const LLAMA_FULL_LAYERS = 20;

/**
 * The tensors of a Llama-shaped decoder in `dtype` (hidden 1536, MLP 4096, vocabulary 32000): embedding,
 * `layers` blocks of attention and gated MLP with their RMS norms, final norm and head. With 20 layers
 * that is 664 M parameters, 1.33 GB in bf16; fewer layers shrink it (the embedding and head stay 197 MB).
 */
export function llamaTensors(layers: number, dtype: 'BF16' | 'F16'): OutputTensor[] {
  const [hidden, mlp, vocab] = [1536, 4096, 32000];
  const tensors: OutputTensor[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden], dtype }];
  for (let layer = 0; layer < layers; layer++) {
    const p = `model.layers.${layer}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [hidden], dtype },
      { name: `${p}.self_attn.q_proj.weight`, shape: [hidden, hidden], dtype },
      { name: `${p}.self_attn.k_proj.weight`, shape: [hidden, hidden], dtype },
      { name: `${p}.self_attn.v_proj.weight`, shape: [hidden, hidden], dtype },
      { name: `${p}.self_attn.o_proj.weight`, shape: [hidden, hidden], dtype },
      { name: `${p}.post_attention_layernorm.weight`, shape: [hidden], dtype },
      { name: `${p}.mlp.gate_proj.weight`, shape: [mlp, hidden], dtype },
      { name: `${p}.mlp.up_proj.weight`, shape: [mlp, hidden], dtype },
      { name: `${p}.mlp.down_proj.weight`, shape: [hidden, mlp], dtype },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [hidden], dtype }, { name: 'lm_head.weight', shape: [vocab, hidden], dtype });
  return tensors;
}

/** Synthetic half-precision values near zero, as fine-tuned weights are: one 8 MB block per ingredient, repeated. */
function halfBlock(seed: number, dtype: 'BF16' | 'F16'): Uint8Array {
  const bits = new Uint16Array(4 << 20);
  const scratch = new Float32Array(1);
  const scratchBits = new Uint32Array(scratch.buffer);
  let state = (seed + 1) * 2654435761;
  for (let i = 0; i < bits.length; i++) {
    state = (state * 1664525 + 1013904223) >>> 0;
    scratch[0] = (state / 4294967296 - 0.5) * 0.1;
    const x = scratchBits[0]!;
    if (dtype === 'BF16') {
      bits[i] = x >>> 16;
    } else {
      // |v| < 0.05: a normal half, exponent rebiased, mantissa truncated (any half will do here).
      const exponent = ((x >>> 23) & 0xff) - 112;
      bits[i] = ((x >>> 16) & 0x8000) | (exponent > 0 ? (exponent << 10) | ((x >>> 13) & 0x3ff) : 0);
    }
  }
  return new Uint8Array(bits.buffer);
}

/**
 * Writes `count` Llama-shaped ingredients as Hugging Face shards them: each a folder with
 * model-00001-of-00002.safetensors, model-00002-of-00002.safetensors and model.safetensors.index.json.
 */
export async function makeLlamaCheckpoints(folder: string, count: number, layers: number, dtype: 'BF16' | 'F16'): Promise<string[]> {
  const tensors = llamaTensors(layers, dtype);
  const total = tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1) * 2, 0);
  const shards: OutputTensor[][] = [[], []];
  let bytes = 0;
  for (const tensor of tensors) {
    shards[bytes < total / 2 ? 0 : 1]!.push(tensor);
    bytes += tensor.shape.reduce((a, b) => a * b, 1) * 2;
  }
  const names = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];
  const weightMap = Object.fromEntries(shards.flatMap((shard, i) => shard.map((t) => [t.name, names[i]!])));
  const folders: string[] = [];
  for (let k = 0; k < count; k++) {
    const ingredient = path.join(folder, `run-${k}`);
    await mkdir(ingredient, { recursive: true });
    const block = halfBlock(k, dtype);
    for (const [i, shard] of shards.entries()) {
      const handle = await open(path.join(ingredient, names[i]!), 'w');
      await handle.write(encodeSafetensorsHeader(shard, { format: 'pt' }));
      for (const tensor of shard) {
        let left = tensor.shape.reduce((a, b) => a * b, 1) * 2;
        for (let at = ((k * 4099 + left) % block.length) & ~1; left > 0; at = 0) {
          const piece = block.subarray(at, at + left);
          await handle.write(piece);
          left -= piece.length;
        }
      }
      await handle.close();
    }
    const index = { metadata: { total_size: total }, weight_map: weightMap };
    await writeFile(path.join(ingredient, 'model.safetensors.index.json'), `${JSON.stringify(index, null, 2)}\n`);
    folders.push(ingredient);
  }
  return folders;
}
