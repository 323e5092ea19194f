import path from 'node:path';
import { UsageError } from '../../errors.js';
import { isFloatDType } from '../dtype.js';
import { writeAll, type TensorProducer } from '../safetensors.js';
import { openForWrite } from '../tfjs.js';
import type { OutputTensor } from '../types.js';
import type { OnnxCheckpoint } from './reader.js';
import { dataLength, readPieces, rebuildModel, type Piece, type TensorPlan } from './rebuild.js';
import type { OnnxInitializer } from './scan.js';

/** A protobuf message cannot exceed 2 GB: larger models keep their weights in a file beside them. */
export const MAX_PROTOBUF_BYTES = 2 ** 31 - 1;
const RECIPE_KEY = 'soup.recipe';
/** The external data file of a model written with its weights beside it. */
export const EXTERNAL_DATA_SUFFIX = '.data';

/** ONNX graphs type every value: a soup keeps each initializer's dtype, so --dtype cannot change it. */
export function checkOnnxDtypes(reference: OnnxCheckpoint, tensors: readonly OutputTensor[]): void {
  const changed = tensors.find((tensor) => reference.initializer(tensor.name).dtype !== tensor.dtype);
  if (changed !== undefined) {
    throw new UsageError(
      `an ONNX soup keeps its initializers' dtypes (the graph's types depend on them): "${changed.name}" is ${reference.initializer(changed.name).dtype}, not ${changed.dtype}`,
      {
        hint: 'leave out --dtype, or write a .safetensors file',
      },
    );
  }
}

export interface OnnxWriteOptions {
  /** The name the model will have once moved into place: external data is named after it. */
  finalPath: string;
  /** Above this many bytes, float weights go to `<model>.data` beside the model. */
  externalAbove?: number;
  /** The external data's file name, when not `<model>.data` (a replacement keeps the old one until the new model is in). */
  dataName?: string | undefined;
}

/**
 * Writes a soup of ONNX ingredients: the reference's bytes with its float initializers' data
 * replaced, integer initializers copied, and the recipe in metadata_props. Returns the files written
 * (the model, then its external data file, if any) as paths beside `file`.
 */
export async function writeOnnx(
  file: string,
  reference: OnnxCheckpoint,
  tensors: readonly OutputTensor[],
  metadata: () => Promise<Record<string, string>>,
  produce: TensorProducer,
  options: OnnxWriteOptions,
): Promise<string[]> {
  checkOnnxDtypes(reference, tensors);
  const recipe = (await metadata())[RECIPE_KEY];
  const appendMetadata: Record<string, string> = recipe === undefined ? {} : { [RECIPE_KEY]: recipe };
  const integerBytes = new Map<string, Uint8Array>();
  for (const initializer of reference.scan.initializers) {
    if (!isFloatDType(initializer.dtype) && initializer.data.kind === 'external')
      integerBytes.set(initializer.name, await reference.readBytes(initializer.name));
  }
  const inline = (initializer: OnnxInitializer): TensorPlan => {
    const { data } = initializer;
    if (!isFloatDType(initializer.dtype)) return data.kind === 'external' ? { kind: 'raw', bytes: integerBytes.get(initializer.name)! } : { kind: 'copy' };
    return data.kind === 'inline' && data.encoding !== 'varint' ? { kind: 'inplace' } : { kind: 'raw', bytes: undefined };
  };
  let model = rebuildModel(reference.scan, inline, { dropMetadata: new Set([RECIPE_KEY]), appendMetadata });
  const dataName = options.dataName ?? `${path.basename(options.finalPath)}${EXTERNAL_DATA_SUFFIX}`;
  const externalPieces: Piece[] = [];
  if (model.size > (options.externalAbove ?? MAX_PROTOBUF_BYTES)) {
    let offset = 0;
    model = rebuildModel(
      reference.scan,
      (initializer, index) => {
        if (!isFloatDType(initializer.dtype)) return inline(initializer);
        const length = dataLength(initializer);
        externalPieces.push({ kind: 'data', initializer, index, length });
        const plan: TensorPlan = { kind: 'external', location: dataName, offset };
        offset += length;
        return plan;
      },
      { dropMetadata: new Set([RECIPE_KEY]), appendMetadata },
    );
  }
  const produceData = (piece: Extract<Piece, { kind: 'data' }>): AsyncIterable<Uint8Array> => checkedData(piece, tensors[piece.index]!, produce);
  await writeStream(file, readPieces(reference.reader, model.pieces, produceData));
  if (externalPieces.length === 0) return [file];
  const dataFile = `${file}${EXTERNAL_DATA_SUFFIX}`;
  await writeStream(dataFile, readPieces(reference.reader, externalPieces, produceData));
  return [file, dataFile];
}

async function* checkedData(piece: Extract<Piece, { kind: 'data' }>, tensor: OutputTensor, produce: TensorProducer): AsyncGenerator<Uint8Array> {
  if (tensor.name !== piece.initializer.name) throw new Error(`internal: tensor ${piece.index} is ${tensor.name}, not initializer ${piece.initializer.name}`);
  let written = 0;
  for await (const chunk of produce(tensor, piece.index)) {
    written += chunk.byteLength;
    yield chunk;
  }
  if (written !== piece.length) throw new Error(`internal: ${written} bytes produced for "${tensor.name}", which takes ${piece.length}`);
}

async function writeStream(file: string, chunks: AsyncIterable<Uint8Array>): Promise<void> {
  const handle = await openForWrite(file);
  try {
    for await (const chunk of chunks) await writeAll(handle, file, chunk);
  } finally {
    await handle.close();
  }
}
