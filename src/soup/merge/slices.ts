/**
 * mergekit's `slices:` recipes (frankenmerges, layer stacking): each output slice takes the same
 * number of layers from each of its sources (`layer_range: [from, to)`), merged layer by layer with
 * the recipe's method; the output's layers are numbered on from slice to slice. Tensors outside the
 * layers come from the first slice's sources, except the final norm and the LM head, which come from
 * the last slice's, as mergekit's definitions of Llama, Mistral or GPT-2 place them.
 *
 * Each "slot" (the k-th source of every slice, the base apart) is presented to the merge engine as
 * one checkpoint whose tensors carry the output's names, so the engine, the checks and the writer
 * run unchanged.
 */
import type { Checkpoint, ChunkScratch, TensorInfo } from '../../checkpoint/types.js';
import { InputError } from '../../errors.js';
import { LayerIndex, resolveValue, type ParameterValue } from './methods/parameters.js';

export interface SliceSource {
  model: string;
  layerRange: [number, number];
  parameters: Record<string, ParameterValue>;
}

export interface Slice {
  sources: SliceSource[];
  parameters: Record<string, ParameterValue>;
}

const LAYER = /\.(\d+)\./;
/** Tensors outside layers that mergekit's architecture definitions put after them. */
const AFTER_LAYERS = /(?:^|\.)(?:lm_head|norm|ln_f|final_layer_norm|final_layernorm|embed_out)(?:\.|$)/;

/** A tensor's layer and its name with the layer index renumbered, or undefined outside layers. */
function layerOf(name: string): { layer: number; rename: (layer: number) => string } | undefined {
  const match = LAYER.exec(name);
  if (match === null) return undefined;
  return { layer: Number(match[1]), rename: (layer) => `${name.slice(0, match.index)}.${layer}.${name.slice(match.index + match[0].length)}` };
}

/** The number of layers of a checkpoint, refusing models with several stacks of layers as mergekit does. */
export function countLayers(checkpoint: Checkpoint, file: string): number {
  const stacks = new Set<string>();
  let layers = 0;
  for (const tensor of checkpoint.tensors()) {
    const match = LAYER.exec(tensor.name);
    if (match === null) continue;
    stacks.add(tensor.name.slice(0, match.index));
    layers = Math.max(layers, Number(match[1]) + 1);
  }
  if (stacks.size > 1)
    throw new InputError(file, `slices: ${checkpoint.path} has ${stacks.size} stacks of layers (${[...stacks].join(', ')}); mergekit's slices need one`);
  return layers;
}

/** Where one output tensor comes from in one slot, and which slice it belongs to. */
interface Source {
  checkpoint: Checkpoint;
  name: string;
  info: TensorInfo;
}

/** One slot of a sliced merge, read under the output's tensor names. */
export class SlotCheckpoint implements Checkpoint {
  readonly metadata: Readonly<Record<string, string>>;
  readonly files: readonly string[];

  constructor(
    readonly name: string,
    readonly path: string,
    private readonly sources: ReadonlyMap<string, Source>,
    private readonly order: readonly TensorInfo[],
  ) {
    const first = [...sources.values()][0]?.checkpoint;
    this.metadata = first?.metadata ?? {};
    this.files = [...new Set([...sources.values()].flatMap((source) => source.checkpoint.files))];
  }

  get format(): Checkpoint['format'] {
    const format = [...this.sources.values()][0]?.checkpoint.format ?? 'safetensors';
    // One output file: shard layouts of the inputs do not carry over to renumbered layers.
    return format === 'safetensors-sharded' ? 'safetensors' : format === 'pytorch-sharded' ? 'pytorch' : format;
  }

  tensors(): readonly TensorInfo[] {
    return this.order;
  }

  private source(name: string): Source {
    const found = this.sources.get(name);
    if (found === undefined) throw new Error(`internal: slot ${this.name} has no tensor "${name}"`);
    return found;
  }

  readFloats(name: string): Promise<Float32Array | Float64Array> {
    const { checkpoint, name: from } = this.source(name);
    return checkpoint.readFloats(from);
  }

  readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array> {
    const { checkpoint, name: from } = this.source(name);
    return checkpoint.readFloatRange(from, start, count, scratch);
  }

  readBytes(name: string): Promise<Uint8Array> {
    const { checkpoint, name: from } = this.source(name);
    return checkpoint.readBytes(from);
  }

  async close(): Promise<void> {}
}

/** Per output tensor: the slice it comes from (-1: outside layers), and t for gradients. */
export interface SlicePlan {
  base: SlotCheckpoint | undefined;
  slots: SlotCheckpoint[];
  /** Output layers in all. */
  layers: number;
  /** The layer index gradients use: t within the slice, as mergekit's planner sets it. */
  layerIndex: LayerIndex;
  /** The parameters one output tensor merges with: each slot's source's own, the slice's over the global ones. */
  parametersFor(
    name: string,
    global: Readonly<Record<string, ParameterValue>>,
  ): { global: Record<string, ParameterValue>; perModel: Record<string, ParameterValue>[] };
}

class SliceLayerIndex extends LayerIndex {
  constructor(private readonly positions: ReadonlyMap<string, number>) {
    super([]);
  }

  override position(name: string): number {
    return this.positions.get(name) ?? 0;
  }
}

/**
 * Lays the slices out over opened checkpoints (`open(path)` gives the one opened for a model path).
 * `separateBase`: the method takes base_model apart (task vectors, slerp) rather than as one more model.
 */
export function planSlices(
  slices: readonly Slice[],
  base: string | undefined,
  separateBase: boolean,
  open: (model: string) => Checkpoint,
  file: string,
): SlicePlan {
  const baseOf = (slice: Slice): SliceSource | undefined =>
    separateBase && base !== undefined ? slice.sources.find((source) => source.model === base) : undefined;
  const othersOf = (slice: Slice): SliceSource[] => slice.sources.filter((source) => source !== baseOf(slice));
  const slotCount = othersOf(slices[0]!).length;
  slices.forEach((slice, s) => {
    const lengths = new Set(slice.sources.map((source) => source.layerRange[1] - source.layerRange[0]));
    if (lengths.size > 1) throw new InputError(file, `slices[${s}]: all sources must span the same number of layers (got ${[...lengths].join(', ')})`);
    if (othersOf(slice).length !== slotCount)
      throw new InputError(
        file,
        `slices[${s}]: has ${othersOf(slice).length} sources besides base_model and slices[0] ${slotCount}; soup needs the same number in every slice`,
      );
    if (separateBase && base !== undefined && baseOf(slice) === undefined)
      throw new InputError(file, `slices[${s}]: base_model ${base} is not among its sources`);
    slice.sources.forEach((source, k) => {
      const layers = countLayers(open(source.model), file);
      const [from, to] = source.layerRange;
      if (!(Number.isInteger(from) && Number.isInteger(to) && from >= 0 && from < to && to <= layers)) {
        throw new InputError(file, `slices[${s}].sources[${k}].layer_range: [${from}, ${to}] is not within the ${layers} layers of ${source.model}`);
      }
    });
  });
  // Output tensors in order: before the layers, the layers slice by slice, after the layers.
  const reference = open(othersOf(slices[0]!)[0]?.model ?? slices[0]!.sources[0]!.model);
  const loose = reference.tensors().filter((tensor) => layerOf(tensor.name) === undefined);
  const layerTensors = (checkpoint: Checkpoint, layer: number): TensorInfo[] => checkpoint.tensors().filter((tensor) => layerOf(tensor.name)?.layer === layer);
  interface Row {
    out: TensorInfo;
    slice: number;
    pick: (source: SliceSource) => string;
    t: number;
  }
  const rows: Row[] = [];
  const before = loose.filter((tensor) => !AFTER_LAYERS.test(tensor.name));
  const after = loose.filter((tensor) => AFTER_LAYERS.test(tensor.name));
  for (const tensor of before) rows.push({ out: tensor, slice: 0, pick: () => tensor.name, t: 0 });
  let next = 0;
  slices.forEach((slice, s) => {
    const first = slice.sources[0]!;
    const length = first.layerRange[1] - first.layerRange[0];
    for (let idx = 0; idx < length; idx++) {
      const outLayer = next++;
      for (const tensor of layerTensors(open(first.model), first.layerRange[0] + idx)) {
        const renamed = layerOf(tensor.name)!;
        rows.push({
          out: { ...tensor, name: renamed.rename(outLayer) },
          slice: s,
          pick: (source) => renamed.rename(source.layerRange[0] + idx),
          t: length > 1 ? idx / (length - 1) : 1,
        });
      }
    }
  });
  for (const tensor of after) rows.push({ out: tensor, slice: slices.length - 1, pick: () => tensor.name, t: 0 });
  const order = rows.map((row) => {
    const { tiedTo: _tied, ...info } = row.out;
    return info;
  });
  const slot = (name: string, choose: (slice: Slice) => SliceSource): SlotCheckpoint => {
    const sources = new Map<string, Source>();
    for (const row of rows) {
      const source = choose(slices[row.slice]!);
      const checkpoint = open(source.model);
      const from = row.pick(source);
      const info = checkpoint.tensors().find((tensor) => tensor.name === from);
      if (info === undefined) throw new InputError(file, `slices[${row.slice}]: ${source.model} has no tensor "${from}" (for "${row.out.name}")`);
      sources.set(row.out.name, { checkpoint, name: from, info });
    }
    const models = [...new Set(slices.map((slice) => choose(slice).model))];
    return new SlotCheckpoint(
      name,
      models.join(', '),
      sources,
      order.map((info) => ({ ...info, ...pick(sources.get(info.name)!.info) })),
    );
  };
  const pick = (info: TensorInfo): Pick<TensorInfo, 'shape' | 'dtype' | 'storedBytes'> => ({
    shape: info.shape,
    dtype: info.dtype,
    storedBytes: info.storedBytes,
  });
  const slotName = (choose: (slice: Slice) => SliceSource): string => [...new Set(slices.map((slice) => open(choose(slice).model).name))].join('+');
  const slots = Array.from({ length: slotCount }, (_, k) =>
    slot(
      slotName((slice) => othersOf(slice)[k]!),
      (slice) => othersOf(slice)[k]!,
    ),
  );
  const baseSlot =
    separateBase && base !== undefined
      ? slot(
          slotName((slice) => baseOf(slice)!),
          (slice) => baseOf(slice)!,
        )
      : undefined;
  const sliceOf = new Map(rows.map((row) => [row.out.name, row.slice]));
  const layerIndex = new SliceLayerIndex(new Map(rows.map((row) => [row.out.name, row.t])));
  return {
    base: baseSlot,
    slots,
    layers: next,
    layerIndex,
    parametersFor(name, global) {
      const slice = slices[sliceOf.get(name) ?? 0]!;
      const merged: Record<string, ParameterValue> = { ...global };
      for (const [key, value] of Object.entries(slice.parameters)) {
        if (resolveValue(value, name, layerIndex) !== undefined) merged[key] = value;
      }
      return { global: merged, perModel: othersOf(slice).map((source) => source.parameters) };
    },
  };
}

/** config.json with its layer count set to the output's, under whichever key the model uses. */
export function withLayerCount(configJson: string, layers: number): string | undefined {
  let config: unknown;
  try {
    config = JSON.parse(configJson);
  } catch {
    return undefined;
  }
  if (typeof config !== 'object' || config === null || Array.isArray(config)) return undefined;
  const record = config as Record<string, unknown>;
  const keys = ['num_hidden_layers', 'n_layer', 'num_layers', 'n_layers'].filter((key) => typeof record[key] === 'number');
  if (keys.length === 0) return undefined;
  for (const key of keys) record[key] = layers;
  return `${JSON.stringify(record, null, 2)}\n`;
}
