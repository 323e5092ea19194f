import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { ShardedSafetensors } from '../../src/checkpoint/sharded.js';
import { runSoup } from '../helpers/cli.js';
import { listFiles, mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
for (const seed of [1, 2]) await writeSafetensorsFile(path.join(dir, 'runs', `run-${seed}`, 'model.safetensors'), mlpTensors(seed), { format: 'pt' });

describe('soup uniform --out-shard-size', () => {
  it("splits a model folder at the size, with an index naming every tensor's shard and the total size", async () => {
    const whole = path.join(dir, 'whole');
    const sharded = path.join(dir, 'sharded');
    assert.equal((await runSoup(['uniform', path.join(dir, 'runs'), '-o', whole, '--quiet'])).code, 0);
    const result = await runSoup(['uniform', path.join(dir, 'runs'), '-o', sharded, '--out-shard-size', '64', '--quiet']);
    assert.equal(result.code, 0, result.stderr);
    // fc1.weight 48 bytes + fc1.bias 16 fill 64; fc2.weight 32 + fc2.bias 8.
    assert.deepEqual(
      (await listFiles(sharded)).filter((file) => file.includes('safetensors')),
      ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json'],
    );
    const index = JSON.parse(await readFile(path.join(sharded, 'model.safetensors.index.json'), 'utf8'));
    assert.deepEqual(index, {
      metadata: { total_size: 104 },
      weight_map: {
        'fc1.weight': 'model-00001-of-00002.safetensors',
        'fc1.bias': 'model-00001-of-00002.safetensors',
        'fc2.weight': 'model-00002-of-00002.safetensors',
        'fc2.bias': 'model-00002-of-00002.safetensors',
      },
    });
    const reference = await SafetensorsFile.open(path.join(whole, 'model.safetensors'));
    const split = await ShardedSafetensors.open(sharded);
    for (const tensor of reference.tensors()) assert.deepEqual(await split.readBytes(tensor.name), await reference.readBytes(tensor.name));
    await reference.close();
    await split.close();
  });

  it('refuses a size it cannot read, naming the flag', async () => {
    const result = await runSoup(['uniform', path.join(dir, 'runs'), '-o', path.join(dir, 'bad'), '--out-shard-size', 'huge']);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'soup: error: --out-shard-size: "huge" is not a size (use 5GB, 500M, 2GiB or bytes)\n');
  });
});
