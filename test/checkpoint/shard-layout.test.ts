import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { packShards, parseShardSize, reshard } from '../../src/checkpoint/shard-layout.js';
import type { OutputTensor } from '../../src/checkpoint/types.js';

const tensor = (name: string, count: number): OutputTensor => ({ name, shape: [count], dtype: 'F32' });

describe('--out-shard-size', () => {
  it('reads sizes as mergekit and Hugging Face write them', () => {
    assert.equal(parseShardSize('5GB'), 5e9);
    assert.equal(parseShardSize('5B'), 5e9);
    assert.equal(parseShardSize('500M'), 5e8);
    assert.equal(parseShardSize('2GiB'), 2 * 2 ** 30);
    assert.equal(parseShardSize('1.5kb'), 1500);
    assert.equal(parseShardSize('4096'), 4096);
    assert.equal(parseShardSize('5 parsecs'), undefined);
    assert.equal(parseShardSize('0'), undefined);
  });

  it('starts a shard when the next tensor would pass the size, and gives an oversized tensor its own', () => {
    // 40, 40, 400, 8 bytes at most 100 per shard.
    assert.deepEqual(packShards([tensor('a', 10), tensor('b', 10), tensor('c', 100), tensor('d', 2)], 100), [0, 0, 1, 2]);
    assert.deepEqual(packShards([tensor('a', 10), tensor('b', 15)], 100), [0, 0]);
  });

  it('names the shards as Hugging Face does, and keeps one shard a plain model folder', () => {
    const tensors = [tensor('a', 10), tensor('b', 10), tensor('c', 20)];
    const sharded = reshard({ kind: 'safetensors-folder', path: 'out' }, tensors, 80);
    assert.deepEqual(sharded.kind === 'safetensors-sharded' ? [...sharded.layout!] : undefined, [
      ['a', 'model-00001-of-00002.safetensors'],
      ['b', 'model-00001-of-00002.safetensors'],
      ['c', 'model-00002-of-00002.safetensors'],
    ]);
    const torch = reshard({ kind: 'pytorch-folder', path: 'out' }, tensors, 40);
    assert.deepEqual(torch.kind === 'pytorch-sharded' ? [...new Set(torch.layout!.values())] : undefined, [
      'pytorch_model-00001-of-00003.bin',
      'pytorch_model-00002-of-00003.bin',
      'pytorch_model-00003-of-00003.bin',
    ]);
    assert.deepEqual(reshard({ kind: 'safetensors-sharded', path: 'out', layout: new Map() }, tensors, 1e9), { kind: 'safetensors-folder', path: 'out' });
  });

  it('refuses single-file outputs, saying which are sharded', () => {
    assert.throws(() => reshard({ kind: 'safetensors', path: 'soup.safetensors' }, [tensor('a', 1)], 10), {
      message: '--out-shard-size: soup.safetensors is one file, and only safetensors and PyTorch model folders are sharded',
    });
  });
});
