/**
 * Rebuilds an ONNX model from its scan: every byte is copied from the original except the
 * initializer data that a plan replaces, so the graph, metadata and fields this code does not know
 * survive byte for byte. Lengths of the enclosing messages are recomputed only where they change.
 */
import { numel, dtypeSize } from '../dtype.js';
import type { RangeReader } from '../files.js';
import { concatBytes, lenField, lenHeader, varintField, type FieldSpan } from './protobuf.js';
import { GRAPH, MODEL, TENSOR, type OnnxInitializer, type OnnxScan } from './scan.js';

/** What becomes of one initializer's data. */
export type TensorPlan =
  /** The field is copied as it is (integer initializers, identical in every ingredient). */
  | { kind: 'copy' }
  /** New values of the same byte length replace the stored ones where they lie. */
  | { kind: 'inplace' }
  /** New values go into raw_data (the other data fields are dropped). */
  | { kind: 'raw'; bytes: Uint8Array | undefined }
  /** The values live in an external file at `offset` (the data fields are dropped). */
  | { kind: 'external'; location: string; offset: number };

export type Piece =
  | { kind: 'copy'; start: number; end: number }
  | { kind: 'bytes'; bytes: Uint8Array }
  /** New data for an initializer, `length` bytes, produced while writing. */
  | { kind: 'data'; initializer: OnnxInitializer; index: number; length: number };

export interface RebuildOptions {
  /** Graph inputs to leave out (initializers listed as inputs, which would let a feed override them). */
  dropInputs?: ReadonlySet<string>;
  /** metadata_props keys to leave out (an earlier recipe), and entries to append. */
  dropMetadata?: ReadonlySet<string>;
  appendMetadata?: Record<string, string>;
}

const DATA_FIELDS: ReadonlySet<number> = new Set([
  TENSOR.rawData,
  TENSOR.floatData,
  TENSOR.int32Data,
  TENSOR.int64Data,
  TENSOR.doubleData,
  TENSOR.uint64Data,
  TENSOR.externalData,
  TENSOR.dataLocation,
]);

const pieceLength = (piece: Piece): number =>
  piece.kind === 'copy' ? piece.end - piece.start : piece.kind === 'bytes' ? piece.bytes.byteLength : piece.length;
const copyOf = (span: { start: number; end: number }): Piece => ({ kind: 'copy', start: span.start, end: span.end });

export function dataLength(initializer: OnnxInitializer): number {
  return numel(initializer.dims) * dtypeSize(initializer.dtype);
}

/** The model as pieces, and its size; `plan` decides each initializer's fate. */
export function rebuildModel(
  scan: OnnxScan,
  plan: (initializer: OnnxInitializer, index: number) => TensorPlan,
  options: RebuildOptions = {},
): { pieces: Piece[]; size: number } {
  const graphPieces: Piece[] = [];
  let index = 0;
  const inputNames = new Map(scan.inputs.map((input) => [input.span.start, input.name]));
  const initializers = new Map(scan.initializers.map((initializer) => [initializer.span.start, initializer]));
  for (const span of scan.graphFields) {
    if (span.field === GRAPH.input && options.dropInputs?.has(inputNames.get(span.start) ?? '')) continue;
    const initializer = span.field === GRAPH.initializer ? initializers.get(span.start) : undefined;
    if (initializer === undefined) {
      graphPieces.push(copyOf(span));
      continue;
    }
    for (const piece of tensorPieces(initializer, index, plan(initializer, index))) graphPieces.push(piece);
    index++;
  }
  const pieces: Piece[] = [];
  for (const span of scan.fields) {
    if (span.field === MODEL.graph && span.start === scan.graph.start) {
      // A graph has a piece per field (150,000 value_info entries): too many to spread as arguments.
      for (const piece of wrap(span, GRAPH_FIELD, graphPieces)) pieces.push(piece);
      continue;
    }
    const entry = span.field === MODEL.metadataProps ? scan.metadata.find((candidate) => candidate.span.start === span.start) : undefined;
    if (entry !== undefined && options.dropMetadata?.has(entry.key)) continue;
    pieces.push(copyOf(span));
  }
  for (const [key, value] of Object.entries(options.appendMetadata ?? {})) {
    pieces.push({ kind: 'bytes', bytes: lenField(MODEL.metadataProps, concatBytes([lenField(1, key), lenField(2, value)])) });
  }
  return { pieces: merge(pieces), size: pieces.reduce((sum, piece) => sum + pieceLength(piece), 0) };
}

const GRAPH_FIELD = MODEL.graph;

/** A length-delimited field around `inner`: the original header when the length is unchanged. */
function wrap(span: FieldSpan, field: number, inner: Piece[]): Piece[] {
  const length = inner.reduce((sum, piece) => sum + pieceLength(piece), 0);
  const header: Piece =
    length === span.end - span.dataStart ? { kind: 'copy', start: span.start, end: span.dataStart } : { kind: 'bytes', bytes: lenHeader(field, length) };
  return [header, ...inner];
}

function tensorPieces(initializer: OnnxInitializer, index: number, plan: TensorPlan): Piece[] {
  const { span, data } = initializer;
  const length = dataLength(initializer);
  switch (plan.kind) {
    case 'copy':
      return [copyOf(span)];
    case 'inplace': {
      if (data.kind !== 'inline' || data.encoding === 'varint') throw new Error(`internal: ${initializer.name} cannot be replaced in place`);
      return [
        { kind: 'copy', start: span.start, end: data.span.dataStart },
        { kind: 'data', initializer, index, length },
        { kind: 'copy', start: data.span.end, end: span.end },
      ];
    }
    case 'raw':
    case 'external': {
      const kept: Piece[] = initializer.fields.filter((field) => !DATA_FIELDS.has(field.field)).map(copyOf);
      if (plan.kind === 'raw') {
        kept.push({ kind: 'bytes', bytes: lenHeader(TENSOR.rawData, length) });
        kept.push(plan.bytes === undefined ? { kind: 'data', initializer, index, length } : { kind: 'bytes', bytes: plan.bytes });
      } else {
        const entry = (key: string, value: string): Uint8Array => lenField(TENSOR.externalData, concatBytes([lenField(1, key), lenField(2, value)]));
        kept.push({
          kind: 'bytes',
          bytes: concatBytes([
            entry('location', plan.location),
            entry('offset', String(plan.offset)),
            entry('length', String(length)),
            varintField(TENSOR.dataLocation, 1),
          ]),
        });
      }
      return wrap(span, GRAPH.initializer, kept);
    }
  }
}

/** Joins adjacent copies, so that writing makes few large reads. */
function merge(pieces: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const piece of pieces) {
    const last = out[out.length - 1];
    if (piece.kind === 'copy' && last?.kind === 'copy' && last.end === piece.start) last.end = piece.end;
    else out.push(piece.kind === 'copy' ? { ...piece } : piece);
  }
  return out;
}

/** Copies pieces that come from the original file in chunks of at most `chunk` bytes. */
export async function* readPieces(
  reader: RangeReader,
  pieces: readonly Piece[],
  produce: (piece: Extract<Piece, { kind: 'data' }>) => AsyncIterable<Uint8Array>,
  chunk = 4 << 20,
): AsyncGenerator<Uint8Array> {
  for (const piece of pieces) {
    if (piece.kind === 'bytes') yield piece.bytes;
    else if (piece.kind === 'data') yield* produce(piece);
    else for (let at = piece.start; at < piece.end; at += chunk) yield await reader.read(at, Math.min(chunk, piece.end - at));
  }
}
