import { numel } from '../dtype.js';
import { storedBytes, type TensorProducer } from '../safetensors.js';
import { openForWrite } from '../tfjs.js';
import type { MetadataSource, OutputTensor } from '../types.js';
import { contiguousStrides, pickleStateDict, type PickledTensor } from './pickle-writer.js';
import { ZipWriter, type ZipWriterOptions } from './zip-writer.js';

/** What Hugging Face model folders call their torch weights, unsharded and sharded. */
export const TORCH_FOLDER_FILE = 'pytorch_model.bin';
export const TORCH_SHARD_INDEX = 'pytorch_model.bin.index.json';
/** The folder every record sits in; torch.load takes whatever the first record's folder is. */
export const TORCH_ARCHIVE = 'archive';
/** torch.save's serialization format version, as torch 1.6 to 2.x write it. */
const FORMAT_VERSION = '3\n';
/** Metadata keys with this prefix become records of their own (archive/soup.recipe), which torch.load never opens. */
const RECORD_KEY_PREFIX = 'soup.';

/** How each output tensor is pickled, and which tensors own a storage record (ties share their target's). */
export function planStorages(tensors: readonly OutputTensor[]): { pickled: PickledTensor[]; owners: number[] } {
  const pickled: PickledTensor[] = [];
  const owners: number[] = [];
  const byName = new Map<string, PickledTensor>();
  for (const [index, tensor] of tensors.entries()) {
    const target = tensor.tiedTo === undefined ? undefined : byName.get(tensor.tiedTo);
    const shares = target !== undefined && target.dtype === tensor.dtype && target.shape.join() === tensor.shape.join();
    const entry: PickledTensor = shares
      ? { ...target, name: tensor.name }
      : {
          name: tensor.name,
          dtype: tensor.dtype,
          storageKey: String(owners.length),
          storageElements: numel(tensor.shape),
          storageOffset: 0,
          shape: tensor.shape,
          stride: contiguousStrides(tensor.shape),
        };
    if (!shares) owners.push(index);
    pickled.push(entry);
    byName.set(tensor.name, entry);
  }
  return { pickled, owners };
}

/**
 * Writes a torch.save zip (the format of torch >= 1.6) that torch.load(weights_only=True) loads:
 * data.pkl, byteorder, one stored record per storage, version, then our metadata records. Tensors
 * tied to an earlier one are pickled as views of its storage and never asked of `produce`.
 */
export async function writeTorchFile(
  file: string,
  tensors: readonly OutputTensor[],
  metadata: MetadataSource,
  produce: TensorProducer,
  options: ZipWriterOptions = {},
): Promise<void> {
  const { pickled, owners } = planStorages(tensors);
  const handle = await openForWrite(file);
  try {
    const zip = new ZipWriter(handle, file, options);
    const text = (value: string): Uint8Array => new TextEncoder().encode(value);
    await zip.addRecord(`${TORCH_ARCHIVE}/data.pkl`, pickleStateDict(pickled));
    await zip.addRecord(`${TORCH_ARCHIVE}/byteorder`, text('little'));
    for (const index of owners) {
      const tensor = tensors[index]!;
      await zip.addStream(`${TORCH_ARCHIVE}/data/${pickled[index]!.storageKey}`, storedBytes(tensor), produce(tensor, index));
    }
    await zip.addRecord(`${TORCH_ARCHIVE}/version`, text(FORMAT_VERSION));
    // Hashes of the ingredients are known only now: the records that carry them come last.
    for (const [key, value] of Object.entries(await metadata.resolve())) {
      if (key.startsWith(RECORD_KEY_PREFIX)) await zip.addRecord(`${TORCH_ARCHIVE}/${key}`, text(value));
    }
    await zip.finish();
  } finally {
    await handle.close();
  }
}
