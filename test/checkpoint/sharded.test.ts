import assert from 'node:assert/strict';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ShardedSafetensors, shardFileName } from '../../src/checkpoint/sharded.js';
import { InputError } from '../../src/errors.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

/** A Hugging Face style sharded checkpoint: two shards and an index. */
async function makeSharded(name: string, weightMap?: Record<string, string>): Promise<string> {
  const folder = path.join(dir, name);
  await writeSafetensorsFile(path.join(folder, shardFileName(0, 2)), {
    'embed.weight': { dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
  });
  await writeSafetensorsFile(path.join(folder, shardFileName(1, 2)), {
    'head.weight': { dtype: 'F32', shape: [2], values: [5, 6] },
    'head.bias': { dtype: 'F32', shape: [1], values: [7] },
  });
  const map = weightMap ?? {
    'embed.weight': shardFileName(0, 2),
    'head.weight': shardFileName(1, 2),
    'head.bias': shardFileName(1, 2),
  };
  await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 28 }, weight_map: map }));
  return folder;
}

describe('ShardedSafetensors', () => {
  it('names shards as Hugging Face does', () => {
    assert.equal(shardFileName(0, 3), 'model-00001-of-00003.safetensors');
  });

  it('reads tensors from every shard in shard order', async () => {
    const checkpoint = await ShardedSafetensors.open(await makeSharded('ok'));
    assert.equal(checkpoint.name, 'ok');
    assert.deepEqual(
      checkpoint.tensors().map((t) => t.name),
      ['embed.weight', 'head.weight', 'head.bias'],
    );
    assert.deepEqual([...(await checkpoint.readFloats('head.bias'))], [7]);
    assert.deepEqual([...(await checkpoint.readFloats('embed.weight'))], [1, 2, 3, 4]);
    assert.equal(checkpoint.shardLayout().get('head.weight'), 'model-00002-of-00002.safetensors');
    await checkpoint.close();
  });

  it('refuses a weight_map entry whose shard does not hold the tensor', async () => {
    const folder = await makeSharded('wrong-shard', {
      'embed.weight': shardFileName(1, 2),
      'head.weight': shardFileName(1, 2),
      'head.bias': shardFileName(1, 2),
    });
    await assert.rejects(ShardedSafetensors.open(folder), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.match(
        error.message,
        /model\.safetensors\.index\.json: tensor "embed\.weight": weight_map puts it in model-00002-of-00002\.safetensors, which does not hold it/,
      );
      return true;
    });
  });

  it('refuses a shard tensor that the weight_map does not list', async () => {
    const folder = await makeSharded('unlisted', { 'embed.weight': shardFileName(0, 2), 'head.weight': shardFileName(1, 2) });
    await assert.rejects(ShardedSafetensors.open(folder), /model-00002-of-00002\.safetensors: tensor "head\.bias": is missing from the index weight_map/);
  });

  it('refuses weight_map paths that leave the folder, directly or through a symlink', async () => {
    const outside = await writeSafetensorsFile(path.join(dir, 'outside.safetensors'), { x: { dtype: 'F32', shape: [1], values: [1] } });
    const absolute = await makeSharded('absolute', { x: outside });
    await assert.rejects(ShardedSafetensors.open(absolute), /points outside the checkpoint folder/);
    const dotdot = await makeSharded('dotdot', { x: '../outside.safetensors' });
    await assert.rejects(ShardedSafetensors.open(dotdot), /path "\.\.\/outside\.safetensors" points outside the checkpoint folder/);
    const linked = await makeSharded('linked', { x: 'link.safetensors' });
    await symlink(outside, path.join(linked, 'link.safetensors'));
    await assert.rejects(ShardedSafetensors.open(linked), /path "link\.safetensors" is a link that points outside the checkpoint folder/);
  });

  it('refuses an index file that is a link out of the folder, and reads a Hugging Face cache snapshot whose files link to its blobs', async () => {
    const source = await makeSharded('index-source');
    const linked = await makeSharded('index-linked');
    const index = path.join(linked, 'model.safetensors.index.json');
    await rm(index);
    await symlink(path.join(source, 'model.safetensors.index.json'), index);
    await assert.rejects(ShardedSafetensors.open(linked), (error: unknown) => {
      assert.ok(error instanceof InputError);
      assert.equal(error.message, `${index}: is a link that points outside the checkpoint folder; soup reads and copies nothing from outside an ingredient`);
      return true;
    });
    // The cache keeps each file once in blobs/ and links it from every snapshot: ../../blobs/<hash>.
    const repo = path.join(dir, 'hub', 'models--org--name');
    const snapshot = path.join(repo, 'snapshots', 'c0ffee');
    await mkdir(path.join(repo, 'blobs'), { recursive: true });
    await mkdir(snapshot, { recursive: true });
    for (const name of [shardFileName(0, 2), shardFileName(1, 2), 'model.safetensors.index.json']) {
      const blob = `blob-${name.length}-${name.slice(6, 11)}`;
      await rename(path.join(source, name), path.join(repo, 'blobs', blob));
      await symlink(path.join('..', '..', 'blobs', blob), path.join(snapshot, name));
    }
    const checkpoint = await ShardedSafetensors.open(snapshot);
    assert.deepEqual([...(await checkpoint.readFloats('head.weight'))], [5, 6]);
    await checkpoint.close();
  });

  it('refuses an index that is not JSON or has no weight_map', async () => {
    const folder = await makeSharded('bad-index');
    await writeFile(path.join(folder, 'model.safetensors.index.json'), '{"metadata": {}}');
    await assert.rejects(ShardedSafetensors.open(folder), /malformed index: weight_map: /);
    await writeFile(path.join(folder, 'model.safetensors.index.json'), '{"weight_map": ');
    await assert.rejects(ShardedSafetensors.open(folder), /index is not valid JSON/);
  });

  it('names an unlisted tensor called toString or constructor as missing from the weight_map, not as "listed in function toString()"', async () => {
    for (const name of ['toString', 'constructor', 'hasOwnProperty']) {
      const folder = path.join(dir, `unlisted-${name.replace(/_/g, '')}`);
      await writeSafetensorsFile(path.join(folder, shardFileName(0, 1)), {
        'embed.weight': { dtype: 'F32', shape: [1], values: [1] },
        [name]: { dtype: 'F32', shape: [1], values: [2] },
      });
      await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { 'embed.weight': shardFileName(0, 1) } }));
      await assert.rejects(ShardedSafetensors.open(folder), {
        message: `${path.join(folder, shardFileName(0, 1))}: tensor "${name}": is missing from the index weight_map`,
      });
    }
  });

  it('refuses a shard named README.md or like anything but a .safetensors file', async () => {
    const folder = await makeSharded('readme', { 'embed.weight': shardFileName(0, 2), 'head.weight': 'README.md', 'head.bias': 'README.md' });
    await assert.rejects(ShardedSafetensors.open(folder), {
      message: `${path.join(folder, 'model.safetensors.index.json')}: tensor "head.weight": weight_map puts it in "README.md", which is not a .safetensors shard`,
    });
  });
});
