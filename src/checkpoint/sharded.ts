import path, { join as joinPath } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { quoteName } from '../one-line.js';
import { decodeUtf8, parseJson, readSmallFile, refuseLinkOutside, resolveInside } from './files.js';
import { SafetensorsFile } from './safetensors.js';
import type { Checkpoint, CheckpointFormat, ChunkScratch, TensorInfo } from './types.js';

export const SHARD_INDEX = 'model.safetensors.index.json';
const MAX_INDEX_BYTES = 100_000_000;

const indexSchema = z.object({
  metadata: z.record(z.string(), z.unknown()).optional(),
  weight_map: z.record(z.string(), z.string()),
});

/** Hugging Face's shard naming, e.g. model-00001-of-00003.safetensors. */
export function shardFileName(index: number, count: number): string {
  const pad = (n: number): string => String(n).padStart(5, '0');
  return `model-${pad(index + 1)}-of-${pad(count)}.safetensors`;
}

/** One shard of a sharded checkpoint: a checkpoint that can say whether it holds a tensor. */
export interface Shard extends Checkpoint {
  has(name: string): boolean;
}

/**
 * A folder with a Hugging Face index (model.safetensors.index.json, pytorch_model.bin.index.json):
 * every shard is opened and checked against the weight_map on open; weights are then read from
 * one shard at a time.
 */
export abstract class ShardedCheckpoint implements Checkpoint {
  abstract readonly format: CheckpointFormat;
  readonly files: readonly string[];
  private readonly shardOf = new Map<string, Shard>();
  private readonly ordered: TensorInfo[] = [];
  private current: Shard | undefined;
  /** Stored bytes as they are, where every shard's format can hand them out (safetensors, not PyTorch views). */
  readonly readStoredRange?: (name: string, start: number, count: number, into: Uint8Array) => Promise<Uint8Array>;

  protected constructor(
    readonly name: string,
    readonly path: string,
    indexName: string,
    private readonly shards: Shard[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.files = [joinPath(path, indexName), ...shards.map((shard) => shard.path)];
    for (const shard of shards) {
      for (const tensor of shard.tensors()) {
        this.shardOf.set(tensor.name, shard);
        this.ordered.push(tensor);
      }
    }
    if (shards.every((shard) => shard.readStoredRange !== undefined)) {
      this.readStoredRange = async (name, start, count, into) => (await this.select(name)).readStoredRange!(name, start, count, into);
    }
  }

  tensors(): readonly TensorInfo[] {
    return this.ordered;
  }

  /** Which shard file (by name) holds each tensor, so a writer can keep the same layout. */
  shardLayout(): Map<string, string> {
    return new Map([...this.shardOf].map(([tensor, shard]) => [tensor, shard.name]));
  }

  async readBytes(name: string): Promise<Uint8Array> {
    return (await this.select(name)).readBytes(name);
  }

  async readFloats(name: string): Promise<Float32Array | Float64Array> {
    return (await this.select(name)).readFloats(name);
  }

  async readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    return (await this.select(name)).readFloatRange(name, start, count, scratch);
  }

  async close(): Promise<void> {
    this.current = undefined;
    await Promise.all(this.shards.map((shard) => shard.close()));
  }

  private async select(name: string): Promise<Shard> {
    const shard = this.shardOf.get(name);
    if (shard === undefined) throw new InputError(this.path, 'no such tensor', { tensor: name });
    if (this.current !== shard) {
      await this.current?.close();
      this.current = shard;
    }
    return shard;
  }
}

/**
 * Reads and validates a shard index, then opens every shard it names (each shard's name is its
 * file name): every tensor must sit in exactly the shard the weight_map says.
 */
export async function openShards<S extends Shard>(folder: string, index: string, openShard: (file: string, name: string) => Promise<S>): Promise<S[]> {
  const indexFile = path.join(folder, index);
  await refuseLinkOutside(folder, indexFile);
  const json = parseJson(decodeUtf8(await readSmallFile(indexFile, MAX_INDEX_BYTES), indexFile, 'index'), indexFile, 'index');
  const parsed = indexSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(indexFile, `malformed index: ${issue.path.join('.') || 'top level'}: ${issue.message}`);
  }
  // A Map of the file's own entries: tensor names such as "toString" or "__proto__" must not reach a prototype.
  const weightMap = new Map(Object.entries((json as { weight_map: Record<string, unknown> }).weight_map));
  if (weightMap.size === 0) throw new InputError(indexFile, 'weight_map is empty');
  // Shards end like the weights file the index is named after: a shard called README.md or
  // config.json would be mistaken for, or replaced by, the files soup writes beside a folder soup.
  const extension = path.extname(index.replace(/\.index\.json$/, ''));
  for (const [tensor, shardName] of weightMap) {
    if (typeof shardName !== 'string') throw new InputError(indexFile, 'malformed index: weight_map values must be shard file names', { tensor });
    if (!shardName.endsWith(extension) || shardName === index) {
      throw new InputError(indexFile, `weight_map puts it in ${quoteName(shardName)}, which is not a ${extension} shard`, { tensor });
    }
  }

  // Shards in name order, which for HF's model-0000i-of-0000N names is also their numeric order.
  const shardNames = [...new Set(weightMap.values() as Iterable<string>)].sort();
  const shards: S[] = [];
  for (const shardName of shardNames) {
    const shardPath = await resolveInside(folder, shardName, indexFile);
    shards.push(await openShard(shardPath, shardName));
  }
  const byShard = new Map(shards.map((shard) => [shard.name, shard]));
  for (const [tensor, shardName] of weightMap) {
    const shard = byShard.get(shardName as string)!;
    if (!shard.has(tensor)) throw new InputError(indexFile, `weight_map puts it in ${shardName}, which does not hold it`, { tensor });
  }
  for (const shard of shards) {
    for (const tensor of shard.tensors()) {
      if (weightMap.get(tensor.name) !== shard.name) {
        const listed = weightMap.get(tensor.name) as string | undefined;
        const problem = listed === undefined ? 'is missing from the index weight_map' : `is also listed in ${listed}`;
        throw new InputError(shard.path, problem, { tensor: tensor.name });
      }
    }
  }
  return shards;
}

/** A folder with model.safetensors.index.json and its safetensors shards. */
export class ShardedSafetensors extends ShardedCheckpoint {
  readonly format = 'safetensors-sharded' as const;

  static async open(folder: string, name = path.basename(path.resolve(folder))): Promise<ShardedSafetensors> {
    const shards = await openShards(folder, SHARD_INDEX, (file, shardName) => SafetensorsFile.open(file, shardName));
    return new ShardedSafetensors(name, folder, SHARD_INDEX, shards, { ...shards[0]!.metadata });
  }
}
