/**
 * `base+adapter` references: a PEFT LoRA adapter folder (adapter_config.json,
 * adapter_model.safetensors) applied to its base model on read, as `merge_and_unload` would:
 * W' = W + s B A on each target module, s = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora;
 * rank_pattern and alpha_pattern honoured), transposed for fan_in_fan_out layers and embeddings.
 * One tensor at a time, in float64, rounded once to the tensor's dtype. Adapter tensors that are not
 * LoRA factors (modules_to_save, biases) replace the base's tensor of the same name and shape.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.js';
import { decodeFloats, encodeFloats, isFloatDType, type FloatDType } from './dtype.js';
import { parseHubReference, resolveHubReference } from './hf-cache.js';
import { SafetensorsFile } from './safetensors.js';
import type { Checkpoint, ChunkScratch, TensorInfo } from './types.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

const configSchema = z.object({
  r: z.number().int().positive(),
  lora_alpha: z.number(),
  fan_in_fan_out: z.boolean().optional(),
  use_rslora: z.boolean().optional(),
  use_dora: z.boolean().optional(),
  rank_pattern: z.record(z.string(), z.number()).optional(),
  alpha_pattern: z.record(z.string(), z.number()).optional(),
  peft_type: z.string().optional(),
});
type AdapterConfig = z.infer<typeof configSchema>;

/** How one base tensor changes: a product of LoRA factors, or a replacement. */
type Patch = { kind: 'lora'; a: string; b: string; scale: number; transpose: boolean } | { kind: 'replace'; from: string };

const FACTOR = /^(.*)\.lora_(A|B|embedding_A|embedding_B)(?:\.default)?(?:\.weight)?$/;

function moduleName(key: string): string {
  return key.replace(/^base_model\.model\./, '');
}

/** PEFT's pattern rule: a key matches a module whose name is the key or ends in ".key". */
function patternValue(patterns: Record<string, number> | undefined, module: string): number | undefined {
  for (const [key, value] of Object.entries(patterns ?? {})) if (new RegExp(`(.*\\.)?${key}$`).test(module)) return value;
  return undefined;
}

export class LoraCheckpoint implements Checkpoint {
  readonly files: readonly string[];
  private cached: { name: string; values: Float64Array } | undefined;
  private readonly infos: TensorInfo[];

  private constructor(
    private readonly base: Checkpoint,
    private readonly adapter: SafetensorsFile,
    private readonly patches: ReadonlyMap<string, Patch>,
    adapterConfig: string,
  ) {
    this.files = [...base.files, adapterConfig, adapter.path];
    // A changed tensor no longer shares storage with the tensors it was tied to.
    const changed = (info: TensorInfo): boolean => patches.has(info.name) || (info.tiedTo !== undefined && patches.has(info.tiedTo));
    this.infos = base.tensors().map(({ tiedTo, ...info }) => (tiedTo === undefined || changed({ ...info, tiedTo }) ? info : { ...info, tiedTo }));
  }

  static async open(base: Checkpoint, folder: string): Promise<LoraCheckpoint> {
    const configFile = path.join(folder, ADAPTER_CONFIG);
    const text = await readFile(configFile, 'utf8').catch(() => {
      throw new InputError(folder, `not a PEFT adapter folder (no ${ADAPTER_CONFIG})`);
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new InputError(configFile, 'not valid JSON');
    }
    const checked = configSchema.safeParse(parsed);
    if (!checked.success) throw new InputError(configFile, `${checked.error.issues[0]!.path.join('.')}: ${checked.error.issues[0]!.message}`);
    const config = checked.data;
    if (config.peft_type !== undefined && config.peft_type !== 'LORA')
      throw new InputError(configFile, `peft_type ${config.peft_type}: only LoRA adapters are applied`);
    if (config.use_dora === true) throw new InputError(configFile, 'use_dora: DoRA adapters are not supported (only plain LoRA)');
    const weights = path.join(folder, ADAPTER_WEIGHTS);
    if ((await stat(weights).catch(() => undefined)) === undefined)
      throw new InputError(folder, `no ${ADAPTER_WEIGHTS} (adapter_model.bin is not read: convert it to safetensors)`);
    const adapter = await SafetensorsFile.open(weights);
    try {
      return new LoraCheckpoint(base, adapter, planPatches(base, adapter, config, weights), configFile);
    } catch (error) {
      await adapter.close();
      throw error;
    }
  }

  get name(): string {
    return this.base.name;
  }

  get path(): string {
    return this.base.path;
  }

  get format(): Checkpoint['format'] {
    return this.base.format;
  }

  get metadata(): Readonly<Record<string, string>> {
    return this.base.metadata;
  }

  tensors(): readonly TensorInfo[] {
    return this.infos;
  }

  /** W + s B A of a patched tensor, in float64 (the last one kept, for range reads). */
  private async patched(name: string, patch: Patch): Promise<Float64Array> {
    if (this.cached?.name === name) return this.cached.values;
    let values: Float64Array;
    if (patch.kind === 'replace') {
      values = Float64Array.from(await this.adapter.readFloats(patch.from));
    } else {
      values = Float64Array.from(await this.base.readFloats(name));
      const a = await this.adapter.readFloats(patch.a);
      const b = await this.adapter.readFloats(patch.b);
      const [rank, inner] = this.adapter.tensors().find((tensor) => tensor.name === patch.a)!.shape as [number, number];
      const outer = b.length / rank;
      const row = new Float64Array(inner);
      for (let o = 0; o < outer; o++) {
        row.fill(0);
        for (let r = 0; r < rank; r++) {
          const factor = b[o * rank + r]!;
          if (factor === 0) continue;
          for (let i = 0; i < inner; i++) row[i]! += factor * a[r * inner + i]!;
        }
        if (patch.transpose) for (let i = 0; i < inner; i++) values[i * outer + o]! += patch.scale * row[i]!;
        else for (let i = 0; i < inner; i++) values[o * inner + i]! += patch.scale * row[i]!;
      }
    }
    this.cached = { name, values };
    return values;
  }

  private dtypeOf(name: string): FloatDType {
    const dtype = this.infos.find((tensor) => tensor.name === name)!.dtype;
    return dtype as FloatDType;
  }

  async readFloats(name: string): Promise<Float32Array | Float64Array> {
    const patch = this.patches.get(name);
    if (patch === undefined) return this.base.readFloats(name);
    const values = await this.patched(name, patch);
    const dtype = this.dtypeOf(name);
    return dtype === 'F64' ? Float64Array.from(values) : decodeFloats(encodeFloats(values, dtype), dtype);
  }

  async readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    const patch = this.patches.get(name);
    if (patch === undefined) return this.base.readFloatRange(name, start, count, scratch);
    const dtype = this.dtypeOf(name);
    const part = (await this.patched(name, patch)).subarray(start, start + count);
    return dtype === 'F64' ? Float64Array.from(part) : decodeFloats(encodeFloats(part, dtype), dtype);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    const patch = this.patches.get(name);
    if (patch === undefined) return this.base.readBytes(name);
    return encodeFloats(await this.patched(name, patch), this.dtypeOf(name));
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.base.close(), this.adapter.close()]);
  }
}

/** Which base tensor each adapter tensor changes, with every shape checked before a weight is read. */
function planPatches(base: Checkpoint, adapter: SafetensorsFile, config: AdapterConfig, file: string): Map<string, Patch> {
  const byName = new Map(base.tensors().map((tensor) => [tensor.name, tensor]));
  const factors = new Map<string, { A?: TensorInfo; B?: TensorInfo; embedding: boolean }>();
  const patches = new Map<string, Patch>();
  for (const tensor of adapter.tensors()) {
    const match = FACTOR.exec(moduleName(tensor.name));
    if (match === null) {
      const target = moduleName(tensor.name).replace(/\.modules_to_save(?:\.default)?/, '');
      const own = byName.get(target);
      if (own === undefined || own.shape.join() !== tensor.shape.join()) {
        throw new InputError(file, `matches no tensor of ${base.path} with shape [${tensor.shape.join(', ')}]`, { tensor: tensor.name });
      }
      patches.set(target, { kind: 'replace', from: tensor.name });
      continue;
    }
    const [, module, which] = match as unknown as [string, string, string];
    const entry = factors.get(module) ?? { embedding: which.startsWith('embedding') };
    entry[which.endsWith('A') ? 'A' : 'B'] = tensor;
    factors.set(module, entry);
  }
  for (const [module, { A, B, embedding }] of factors) {
    if (A === undefined || B === undefined) throw new InputError(file, `${module} has lora_${A === undefined ? 'A' : 'B'} missing`);
    const target = `${module}.weight`;
    const weight = byName.get(target);
    if (weight === undefined) throw new InputError(file, `${base.path} has no tensor "${target}" for the LoRA factors of ${module}`);
    if (!isFloatDType(weight.dtype)) throw new InputError(file, `"${target}" is ${weight.dtype}: LoRA applies to float tensors`);
    const r = patternValue(config.rank_pattern, module) ?? config.r;
    const alpha = patternValue(config.alpha_pattern, module) ?? config.lora_alpha;
    const [rankA, inner] = A.shape;
    const [outer, rankB] = B.shape;
    const transpose = embedding || config.fan_in_fan_out === true;
    const expected = transpose ? [inner, outer] : [outer, inner];
    if (A.shape.length !== 2 || B.shape.length !== 2 || rankA !== rankB || weight.shape.join() !== expected.join()) {
      throw new InputError(
        file,
        `LoRA factors of ${module} ([${B.shape.join(', ')}] x [${A.shape.join(', ')}]${transpose ? ', transposed' : ''}) do not fit "${target}" [${weight.shape.join(', ')}]`,
      );
    }
    if (rankA !== r) throw new InputError(file, `${module}: lora_A has rank ${rankA}, adapter_config.json says r = ${r}`);
    patches.set(target, { kind: 'lora', a: A.name, b: B.name, scale: config.use_rslora === true ? alpha / Math.sqrt(r) : alpha / r, transpose });
  }
  return patches;
}

/** Where a typed input lives once Hugging Face references are resolved, and what to apply on read. */
export interface ResolvedInput {
  input: string;
  /** The ingredient's name, for Hub references and base+adapter. */
  name?: string;
  /** A PEFT adapter folder to apply to the checkpoint at `input`. */
  adapter?: string;
}

async function resolvePart(text: string): Promise<{ path: string; name: string; hub: boolean }> {
  if ((await stat(text).catch(() => undefined)) !== undefined) return { path: text, name: path.basename(path.resolve(text)), hub: false };
  const reference = parseHubReference(text);
  if (reference === undefined) return { path: text, name: path.basename(text), hub: false };
  return { path: await resolveHubReference(reference), name: reference.id.split('/')[1]!, hub: true };
}

/**
 * What the user typed, resolved: a local path as it is; `org/name[@rev]` from the Hub cache;
 * `base+adapter` (each side a path or a Hub reference) as the base with the adapter to apply.
 */
export async function resolveReference(typed: string): Promise<ResolvedInput> {
  if ((await stat(typed).catch(() => undefined)) !== undefined) return { input: typed };
  const plus = typed.indexOf('+');
  if (plus > 0 && plus < typed.length - 1) {
    const base = await resolvePart(typed.slice(0, plus));
    const adapter = await resolvePart(typed.slice(plus + 1));
    return { input: base.path, name: `${base.name}+${adapter.name}`, adapter: adapter.path };
  }
  const part = await resolvePart(typed);
  return part.hub ? { input: part.path, name: part.name } : { input: typed };
}

/** The checkpoint with the ingredient's adapter applied, when it has one. */
export async function applyAdapter(checkpoint: Checkpoint, adapter: string | undefined): Promise<Checkpoint> {
  if (adapter === undefined) return checkpoint;
  try {
    return await LoraCheckpoint.open(checkpoint, adapter);
  } catch (error) {
    await checkpoint.close();
    throw error;
  }
}
