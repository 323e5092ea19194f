import type { FileHandle } from 'node:fs/promises';
import { open } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { InputError, OutputError, describeFsError } from '../errors.js';
import { quoteName } from '../one-line.js';
import { f16BitsToF32, numel, type DType } from './dtype.js';
import { RangeReader, decodeUtf8, fileSize, parseJson, readSmallFile, refuseLinkOutside, resolveInside } from './files.js';
import { writeAll, type TensorProducer } from './safetensors.js';
import type { Checkpoint, OutputTensor, TensorInfo } from './types.js';

export const MODEL_JSON = 'model.json';
const MAX_MODEL_JSON_BYTES = 100_000_000;
/** TF.js's own converter writes 4 MB shards; browsers cache files of that size well. */
export const TFJS_SHARD_BYTES = 4 * 1024 * 1024;

const quantizationSchema = z.object({
  dtype: z.enum(['uint8', 'uint16', 'float16']),
  scale: z.number().finite().optional(),
  min: z.number().finite().optional(),
});
const weightSchema = z.object({
  name: z.string(),
  shape: z.array(z.number().int().nonnegative()),
  dtype: z.string(),
  group: z.string().optional(),
  quantization: quantizationSchema.optional(),
});
const groupSchema = z.object({ paths: z.array(z.string()).min(1), weights: z.array(weightSchema) });
const modelJsonSchema = z
  .object({
    modelTopology: z.record(z.string(), z.unknown()),
    weightsManifest: z.array(groupSchema),
    userDefinedMetadata: z.record(z.string(), z.unknown()).optional(),
  })
  .passthrough();

export type ModelJson = z.infer<typeof modelJsonSchema>;
type Quantization = z.infer<typeof quantizationSchema>;

interface TfjsWeight extends TensorInfo {
  group: number;
  offset: number;
  quantization: Quantization | undefined;
}

const STORED_DTYPES: Record<string, DType> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };
const TFJS_DTYPES: Partial<Record<DType, string>> = { F32: 'float32', I32: 'int32', BOOL: 'bool' };

/** Arrays and objects nested in model.json: Keras topologies use about ten levels. */
export const MAX_JSON_DEPTH = 1000;

/** How deeply arrays and objects nest in JSON text, counted without recursion (JSON.parse and stringify recurse). */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 0x5c) i++;
      else if (char === 0x22) inString = false;
    } else if (char === 0x22) {
      inString = true;
    } else if (char === 0x5b || char === 0x7b) {
      deepest = Math.max(deepest, ++depth);
    } else if (char === 0x5d || char === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

/** Reads model.json as a TF.js LayersModel folder holds it, with every field we rely on checked. */
export async function readModelJson(file: string): Promise<ModelJson> {
  const text = decodeUtf8(await readSmallFile(file, MAX_MODEL_JSON_BYTES), file, 'model.json');
  const depth = jsonDepth(text);
  if (depth > MAX_JSON_DEPTH) throw new InputError(file, `not a TF.js LayersModel: its JSON nests ${depth} levels deep (at most ${MAX_JSON_DEPTH})`);
  const parsed = modelJsonSchema.safeParse(parseJson(text, file, 'model.json'));
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new InputError(file, `not a TF.js LayersModel: ${issue.path.join('.') || 'top level'}: ${issue.message}`);
  }
  return parsed.data;
}

/**
 * A TF.js LayersModel folder. Weights of a group lie back to back across the group's shards, in
 * manifest order; optimizer weights are skipped, quantized weights are dequantized on read.
 */
export class TfjsCheckpoint implements Checkpoint {
  readonly format = 'tfjs' as const;
  private readonly byName: Map<string, TfjsWeight>;
  private lastRead: { name: string; values: Float32Array } | undefined;

  private constructor(
    readonly name: string,
    readonly path: string,
    readonly modelJson: ModelJson,
    private readonly weights: TfjsWeight[],
    private readonly groups: RangeReader[],
    readonly files: readonly string[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {
    this.byName = new Map(weights.map((weight) => [weight.name, weight]));
  }

  static async open(folder: string, name = path.basename(path.resolve(folder))): Promise<TfjsCheckpoint> {
    const manifestFile = path.join(folder, MODEL_JSON);
    await refuseLinkOutside(folder, manifestFile);
    const modelJson = await readModelJson(manifestFile);
    const weights: TfjsWeight[] = [];
    const groups: RangeReader[] = [];
    const files = [manifestFile];
    const seen = new Set<string>();
    for (const [groupIndex, group] of modelJson.weightsManifest.entries()) {
      const parts = [];
      for (const shard of group.paths) {
        const shardPath = await resolveInside(folder, shard, manifestFile);
        parts.push({ path: shardPath, size: await fileSize(shardPath) });
        files.push(shardPath);
      }
      const reader = new RangeReader(parts);
      let offset = 0;
      for (const entry of group.weights) {
        const weight = describeWeight(manifestFile, entry, groupIndex, offset);
        offset += weight.storedBytes;
        if (entry.group === 'optimizer') continue;
        if (seen.has(weight.name)) throw new InputError(manifestFile, 'weight is listed twice in weightsManifest', { tensor: weight.name });
        seen.add(weight.name);
        weights.push(weight);
      }
      if (offset !== reader.size) {
        const problem = offset > reader.size ? 'shards are truncated' : 'shards have trailing bytes';
        throw new InputError(
          manifestFile,
          `weight group ${groupIndex + 1} needs ${offset} bytes but its shards (${group.paths.join(', ')}) hold ${reader.size}: ${problem}`,
        );
      }
      groups.push(reader);
    }
    const metadata = Object.fromEntries(
      Object.entries(modelJson.userDefinedMetadata ?? {}).map(([key, value]) => [key, typeof value === 'string' ? value : JSON.stringify(value)]),
    );
    return new TfjsCheckpoint(name, folder, modelJson, weights, groups, files, metadata);
  }

  tensors(): readonly TensorInfo[] {
    return this.weights;
  }

  async readFloats(name: string): Promise<Float32Array> {
    const weight = this.lookup(name);
    if (weight.dtype !== 'F32') throw new InputError(this.path, `is ${weight.dtype}, not a float tensor`, { tensor: name });
    return this.dequantize(weight, await this.readStored(weight));
  }

  /** TF.js weights are small and may be quantized: the whole weight is read once and sliced. */
  async readFloatRange(name: string, start: number, count: number): Promise<Float32Array> {
    if (this.lastRead?.name !== name) this.lastRead = { name, values: await this.readFloats(name) };
    return this.lastRead.values.subarray(start, start + count);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const weight = this.lookup(name);
    const stored = await this.readStored(weight);
    if (weight.quantization === undefined) return stored;
    const values = this.dequantize(weight, stored);
    // Quantized int32 weights dequantize to integers, as TF.js itself rounds them.
    const out = weight.dtype === 'I32' ? Int32Array.from(values, Math.round) : values;
    return new Uint8Array(out.buffer);
  }

  async close(): Promise<void> {
    this.lastRead = undefined;
    await Promise.all(this.groups.map((group) => group.close()));
  }

  private async readStored(weight: TfjsWeight): Promise<Uint8Array> {
    if (weight.storedBytes === 0) return new Uint8Array(0);
    return this.groups[weight.group]!.read(weight.offset, weight.storedBytes);
  }

  private dequantize(weight: TfjsWeight, stored: Uint8Array): Float32Array {
    const q = weight.quantization;
    if (q === undefined) return new Float32Array(stored.buffer, stored.byteOffset, stored.byteLength / 4);
    const count = numel(weight.shape);
    const out = new Float32Array(count);
    if (q.dtype === 'float16') {
      const bits = new Uint16Array(stored.buffer, stored.byteOffset, count);
      for (let i = 0; i < count; i++) out[i] = f16BitsToF32(bits[i]!);
      return out;
    }
    const scale = q.scale ?? 1;
    const min = q.min ?? 0;
    const codes = q.dtype === 'uint8' ? stored : new Uint16Array(stored.buffer, stored.byteOffset, count);
    for (let i = 0; i < count; i++) out[i] = codes[i]! * scale + min;
    return out;
  }

  private lookup(name: string): TfjsWeight {
    const weight = this.byName.get(name);
    if (weight === undefined) throw new InputError(this.path, 'no such tensor', { tensor: name });
    return weight;
  }
}

function describeWeight(file: string, entry: z.infer<typeof weightSchema>, group: number, offset: number): TfjsWeight {
  // The dtype is text from the file: "__proto__" or "constructor" must not find Object.prototype's.
  const dtype = Object.hasOwn(STORED_DTYPES, entry.dtype) ? STORED_DTYPES[entry.dtype] : undefined;
  if (dtype === undefined) {
    throw new InputError(file, `dtype ${quoteName(entry.dtype, 100)} is not supported (float32, int32 and bool are)`, { tensor: entry.name });
  }
  const count = numel(entry.shape);
  const q = entry.quantization;
  if (q !== undefined && q.dtype !== 'float16' && (q.scale === undefined || q.min === undefined)) {
    throw new InputError(file, `${q.dtype} quantization needs both scale and min`, { tensor: entry.name });
  }
  if (q?.dtype === 'float16' && dtype !== 'F32') throw new InputError(file, 'float16 quantization of a non-float weight', { tensor: entry.name });
  // TF.js refuses to load a quantized bool weight, so a soup of one could not be read back.
  if (q !== undefined && dtype === 'BOOL')
    throw new InputError(file, `${q.dtype} quantization of a bool weight (TF.js quantizes float32 and int32 weights only)`, { tensor: entry.name });
  const elementBytes = q === undefined ? (dtype === 'BOOL' ? 1 : 4) : q.dtype === 'uint8' ? 1 : 2;
  const storedBytes = count * elementBytes;
  if (!Number.isSafeInteger(storedBytes)) throw new InputError(file, `shape [${entry.shape.join(', ')}] is too large`, { tensor: entry.name });
  const info: TfjsWeight = { name: entry.name, shape: entry.shape, dtype, storedBytes, group, offset, quantization: q };
  if (q !== undefined) info.storage = `${q.dtype} quantized`;
  return info;
}

export function tfjsShardName(index: number, count: number): string {
  return `group1-shard${index + 1}of${count}.bin`;
}

/**
 * Writes a LayersModel folder: `template`'s topology and other fields, one weight group cut into
 * shards of at most 4 MB, and `metadata` as userDefinedMetadata. F16 weights are stored with TF.js's
 * float16 quantization, which TF.js dequantizes on load.
 */
export async function writeTfjs(
  folder: string,
  template: ModelJson,
  tensors: readonly OutputTensor[],
  metadata: Record<string, string>,
  produce: TensorProducer,
  /** Metadata known only once the weights are written (model.json is written last anyway). */
  finalMetadata?: () => Promise<Record<string, string>>,
): Promise<void> {
  const entries = tensors.map((tensor) => {
    if (tensor.dtype === 'F16') return { name: tensor.name, shape: tensor.shape, dtype: 'float32', quantization: { dtype: 'float16' } };
    const dtype = TFJS_DTYPES[tensor.dtype];
    if (dtype === undefined) throw new OutputError(folder, `a TF.js model cannot store ${tensor.dtype} tensor "${tensor.name}" (write .safetensors instead)`);
    return { name: tensor.name, shape: tensor.shape, dtype };
  });
  const elementBytes = (dtype: DType): number => (dtype === 'F16' ? 2 : dtype === 'BOOL' ? 1 : 4);
  const total = tensors.reduce((sum, tensor) => sum + numel(tensor.shape) * elementBytes(tensor.dtype), 0);
  const shardCount = Math.max(1, Math.ceil(total / TFJS_SHARD_BYTES));
  const paths = Array.from({ length: shardCount }, (_, i) => tfjsShardName(i, shardCount));

  const shards = new ShardSink(folder, paths);
  try {
    for (const [index, tensor] of tensors.entries()) for await (const chunk of produce(tensor, index)) await shards.write(chunk);
    await shards.finish();
  } finally {
    await shards.close();
  }

  const { weightsManifest: _replaced, userDefinedMetadata: _old, ...rest } = template;
  const userDefinedMetadata = finalMetadata === undefined ? metadata : await finalMetadata();
  const modelJson = { ...rest, weightsManifest: [{ paths, weights: entries }], userDefinedMetadata };
  const handle = await openForWrite(path.join(folder, MODEL_JSON));
  try {
    await writeAll(handle, path.join(folder, MODEL_JSON), new TextEncoder().encode(JSON.stringify(modelJson)));
  } finally {
    await handle.close();
  }
}

/** A byte stream cut into fixed-size shard files, opened one at a time. */
class ShardSink {
  private index = -1;
  private handle: FileHandle | undefined;
  private room = 0;

  constructor(
    private readonly folder: string,
    private readonly paths: string[],
  ) {}

  async write(bytes: Uint8Array): Promise<void> {
    let done = 0;
    while (done < bytes.byteLength) {
      if (this.room === 0) await this.next();
      const take = Math.min(this.room, bytes.byteLength - done);
      await writeAll(this.handle!, this.current(), bytes.subarray(done, done + take));
      done += take;
      this.room -= take;
    }
  }

  /** Creates the remaining (possibly empty) shards so that every path in the manifest exists. */
  async finish(): Promise<void> {
    while (this.index < this.paths.length - 1) await this.next();
  }

  async close(): Promise<void> {
    await this.handle?.close();
    this.handle = undefined;
  }

  private current(): string {
    return path.join(this.folder, this.paths[this.index]!);
  }

  private async next(): Promise<void> {
    await this.close();
    this.index++;
    if (this.index >= this.paths.length) throw new Error('internal: more weight bytes than the shard plan holds');
    this.handle = await openForWrite(this.current());
    this.room = TFJS_SHARD_BYTES;
  }
}

export async function openForWrite(file: string): Promise<FileHandle> {
  return open(file, 'wx').catch((error: unknown) => {
    throw new OutputError(file, `cannot create: ${describeFsError(error)}`, { cause: error });
  });
}
