/**
 * --out-shard-size: a model folder's weights split into shards of at most N bytes, as mergekit's
 * TensorWriter splits them: tensors in order, a new shard started when the next tensor would push
 * the current one past N (a tensor larger than N gets a shard of its own), Hugging Face's names
 * (model-00001-of-00003.safetensors; one shard is plain model.safetensors, without an index).
 */
import { UsageError } from '../errors.js';
import { storedBytes } from './safetensors.js';
import type { OutputTensor } from './types.js';
import { folderFormats, resolveTarget, type OutputTarget } from './formats.js';

const UNITS: Record<string, number> = {
  '': 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  b: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "5GB", "500M", "2GiB", mergekit's "5B" (billion), or bytes; undefined for anything else. */
export function parseShardSize(text: string): number | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = match === null ? undefined : UNITS[match[2]!.toLowerCase()];
  if (match === null || unit === undefined) return undefined;
  const bytes = Math.floor(Number(match[1]) * unit);
  return bytes > 0 ? bytes : undefined;
}

/** Which shard each tensor goes to, mergekit's way. */
export function packShards(tensors: readonly OutputTensor[], maxBytes: number): number[] {
  const shardOf: number[] = [];
  let shard = 0;
  let size = 0;
  let filled = false;
  for (const tensor of tensors) {
    const bytes = tensor.tiedTo === undefined ? storedBytes(tensor) : 0;
    if (filled && size + bytes > maxBytes) {
      shard++;
      size = 0;
    }
    shardOf.push(shard);
    size += bytes;
    filled = true;
  }
  return shardOf;
}

/** The folder target `target` with its weights split at `maxBytes`; single-file targets are refused. */
export function reshard(target: OutputTarget, tensors: readonly OutputTensor[], maxBytes: number): OutputTarget {
  const { format, layout } = resolveTarget(target);
  const folder = format.output.folder;
  if (folder === undefined || layout === 'single') {
    throw new UsageError(
      `--out-shard-size: ${target.path} is ${format.output.single === 'folder' ? `a ${format.title} folder` : 'one file'}, and only ${folderFormats('and')} model folders are sharded`,
      {
        hint: `write to a folder (-o OUT without a file suffix) from ${folderFormats('or')} inputs`,
      },
    );
  }
  const shardOf = packShards(tensors, maxBytes);
  const count = (shardOf[shardOf.length - 1] ?? 0) + 1;
  if (count === 1) return { kind: `${format.name}-folder`, path: target.path };
  // model.safetensors -> model-00001-of-00003.safetensors, pytorch_model.bin -> pytorch_model-00001-of-00003.bin
  const dot = folder.file.lastIndexOf('.');
  const [stem, suffix] = [folder.file.slice(0, dot), folder.file.slice(dot)];
  const name = (k: number): string => `${stem}-${String(k + 1).padStart(5, '0')}-of-${String(count).padStart(5, '0')}${suffix}`;
  const shards = new Map(tensors.map((tensor, i) => [tensor.name, name(shardOf[i]!)]));
  return { kind: `${format.name}-sharded`, path: target.path, layout: shards };
}
