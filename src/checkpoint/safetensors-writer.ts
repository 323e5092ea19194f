import { encodeSafetensorsHeader, writeAll, writeSafetensors, type TensorProducer } from './safetensors.js';
import { openForWrite } from './tfjs.js';
import type { MetadataSource, OutputTensor } from './types.js';

/** One safetensors file, its header written first from the placeholder metadata and patched in place once the final metadata is known. */
export async function writeSafetensorsFile(file: string, tensors: readonly OutputTensor[], metadata: MetadataSource, produce: TensorProducer): Promise<void> {
  const handle = await openForWrite(file);
  try {
    const placeholder = await writeSafetensors(handle, file, tensors, metadata.placeholder, produce);
    const header = encodeSafetensorsHeader(tensors, await metadata.resolve());
    if (header.byteLength !== placeholder.byteLength) throw new Error('internal: the final metadata does not fit the space kept for it');
    if (Buffer.compare(header, placeholder) !== 0) await writeAll(handle, file, header, 0);
  } finally {
    await handle.close();
  }
}
