import path from 'node:path';
import { ShardedCheckpoint, openShards } from '../sharded.js';
import { PytorchFile, type PytorchOpenOptions } from './reader.js';

export const PYTORCH_SHARD_INDEX = 'pytorch_model.bin.index.json';

/** A Hugging Face folder of pytorch_model-0000i-of-0000N.bin shards with pytorch_model.bin.index.json. */
export class ShardedPytorch extends ShardedCheckpoint {
  readonly format = 'pytorch-sharded' as const;
  notes: readonly string[] = [];

  static async open(folder: string, name = path.basename(path.resolve(folder)), options: PytorchOpenOptions = {}): Promise<ShardedPytorch> {
    const shards = await openShards(folder, PYTORCH_SHARD_INDEX, (file, shardName) => PytorchFile.open(file, shardName, options));
    const checkpoint = new ShardedPytorch(name, folder, PYTORCH_SHARD_INDEX, shards, { ...shards[0]!.metadata });
    checkpoint.notes = shards[0]!.notes;
    return checkpoint;
  }
}
