/**
 * Scans an ONNX ModelProto in place: where each initializer's data lies (raw_data, a packed typed
 * field, or an external file), the graph's nodes, inputs and outputs, and a hash of everything but
 * the initializer data, so that ingredients can be compared without reading their weights.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { InputError } from '../../errors.js';
import { dtypeSize, numel, type DType } from '../dtype.js';
import { fileSize, resolveInside } from '../files.js';
import { type ProtoCursor, WIRE_LEN, WIRE_VARINT, decodeVarint, type FieldSpan } from './protobuf.js';

/** ModelProto, GraphProto, NodeProto, TensorProto and AttributeProto field numbers (onnx.proto3). */
export const MODEL = { irVersion: 1, opsetImport: 8, graph: 7, metadataProps: 14 } as const;
export const GRAPH = { node: 1, name: 2, initializer: 5, docString: 10, input: 11, output: 12, valueInfo: 13, sparseInitializer: 15 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5, domain: 7 } as const;
const ATTRIBUTE = { t: 5, g: 6, graphs: 11 } as const;
export const TENSOR = {
  dims: 1,
  dataType: 2,
  segment: 3,
  floatData: 4,
  int32Data: 5,
  stringData: 6,
  int64Data: 7,
  name: 8,
  rawData: 9,
  doubleData: 10,
  uint64Data: 11,
  externalData: 13,
  dataLocation: 14,
} as const;

/** ONNX TensorProto.DataType numbers of the types we read, as our dtype names. */
export const ONNX_DTYPES: Record<number, DType> = {
  1: 'F32',
  2: 'U8',
  3: 'I8',
  4: 'U16',
  5: 'I16',
  6: 'I32',
  7: 'I64',
  9: 'BOOL',
  10: 'F16',
  11: 'F64',
  12: 'U32',
  13: 'U64',
  16: 'BF16',
};
export const ONNX_TYPE_OF: Record<string, number> = Object.fromEntries(Object.entries(ONNX_DTYPES).map(([code, dtype]) => [dtype, Number(code)]));
/** Float8, int4 and float4 types: only quantized models hold them. */
const QUANTIZED_TYPES: Record<number, string> = {
  17: 'FLOAT8E4M3FN',
  18: 'FLOAT8E4M3FNUZ',
  19: 'FLOAT8E5M2',
  20: 'FLOAT8E5M2FNUZ',
  21: 'UINT4',
  22: 'INT4',
  23: 'FLOAT4E2M1',
};
const OTHER_TYPES: Record<number, string> = { 8: 'STRING', 14: 'COMPLEX64', 15: 'COMPLEX128' };

/** Which typed field holds a dtype's values when raw_data is not used, and how they are encoded. */
export function typedField(dtype: DType): { field: number; encoding: 'fixed32' | 'fixed64' | 'varint' } {
  switch (dtype) {
    case 'F32':
      return { field: TENSOR.floatData, encoding: 'fixed32' };
    case 'F64':
      return { field: TENSOR.doubleData, encoding: 'fixed64' };
    case 'I64':
      return { field: TENSOR.int64Data, encoding: 'varint' };
    case 'U32':
    case 'U64':
      return { field: TENSOR.uint64Data, encoding: 'varint' };
    default:
      return { field: TENSOR.int32Data, encoding: 'varint' };
  }
}

export type TensorData =
  | { kind: 'inline'; span: FieldSpan; encoding: 'raw' | 'fixed32' | 'fixed64' | 'varint' }
  | { kind: 'external'; file: string; offset: number; length: number }
  | { kind: 'empty' };

export interface OnnxInitializer {
  name: string;
  onnxType: number;
  dtype: DType;
  dims: number[];
  /** The initializer field inside the graph, and the fields of its TensorProto. */
  span: FieldSpan;
  fields: FieldSpan[];
  data: TensorData;
}

export interface OnnxNode {
  opType: string;
  domain: string;
  name: string;
  inputs: string[];
  outputs: string[];
  /** SHA-256 of the node's bytes: two exports of one architecture have identical nodes. */
  hash: string;
  /** Initializers inside a subgraph attribute (If, Loop, Scan bodies). */
  subgraphInitializers: number;
  /** Elements of a float tensor held by a Constant node (0 for others). */
  constantFloats: number;
}

export interface ValueInfo {
  name: string;
  /** TensorProto.DataType of the tensor type, 0 when not given. */
  elemType: number;
  /** dim_value, or dim_param's name (a symbolic size such as "batch"), or undefined when unknown. */
  dims: (number | string | undefined)[];
  span: FieldSpan;
}

export interface OnnxScan {
  file: string;
  size: number;
  fields: FieldSpan[];
  graph: FieldSpan;
  graphFields: FieldSpan[];
  metadata: { key: string; value: string; span: FieldSpan }[];
  initializers: OnnxInitializer[];
  sparseInitializers: number;
  nodes: OnnxNode[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  opsets: string[];
  /** SHA-256 of the opsets, inputs and outputs: with the node hashes, the graph minus initializer data. */
  interfaceHash: string;
}

/** Scans a model file; external data is resolved inside the model's folder and checked for size. */
export async function scanOnnx(cursor: ProtoCursor): Promise<OnnxScan> {
  const file = cursor.file;
  if (cursor.size === 0) throw new InputError(file, 'is empty, not an ONNX model');
  const fields = await cursor.fields(0, cursor.size, 'model');
  const graphs = fields.filter((span) => span.field === MODEL.graph);
  if (graphs.length !== 1 || graphs[0]!.wire !== WIRE_LEN || !fields.some((span) => span.field === MODEL.irVersion && span.wire === WIRE_VARINT)) {
    throw new InputError(file, 'is not an ONNX model (no ir_version and graph in the protobuf)');
  }
  const graph = graphs[0]!;
  const interfaceHash = createHash('sha256');
  const opsets: string[] = [];
  const metadata: OnnxScan['metadata'] = [];
  for (const span of fields) {
    if (span.field === MODEL.opsetImport && span.wire === WIRE_LEN) {
      const bytes = await cursor.bytes(span.dataStart, span.end);
      opsets.push(Buffer.from(bytes).toString('hex'));
    } else if (span.field === MODEL.metadataProps && span.wire === WIRE_LEN) {
      const entry = await readStringPair(cursor, span, 'metadata_props');
      metadata.push({ ...entry, span });
    }
  }
  interfaceHash.update([...opsets].sort().join(','));
  const graphFields = await cursor.fields(graph.dataStart, graph.end, 'graph');
  const initializers: OnnxInitializer[] = [];
  const nodes: OnnxNode[] = [];
  const inputs: ValueInfo[] = [];
  const outputs: ValueInfo[] = [];
  let sparseInitializers = 0;
  const folder = path.dirname(file);
  for (const span of graphFields) {
    if (span.wire !== WIRE_LEN) continue;
    switch (span.field) {
      case GRAPH.initializer:
        initializers.push(await scanTensor(cursor, span, folder));
        break;
      case GRAPH.sparseInitializer:
        sparseInitializers++;
        break;
      case GRAPH.node:
        nodes.push(await scanNode(cursor, span));
        break;
      case GRAPH.input:
      case GRAPH.output: {
        interfaceHash.update(`${span.field}:`).update(await cursor.bytes(span.dataStart, span.end));
        const info = await scanValueInfo(cursor, span);
        (span.field === GRAPH.input ? inputs : outputs).push(info);
        break;
      }
    }
  }
  const seen = new Set<string>();
  for (const initializer of initializers) {
    if (seen.has(initializer.name)) throw new InputError(file, 'initializer is stored twice', { tensor: initializer.name });
    seen.add(initializer.name);
  }
  return {
    file,
    size: cursor.size,
    fields,
    graph,
    graphFields,
    metadata,
    initializers,
    sparseInitializers,
    nodes,
    inputs,
    outputs,
    opsets,
    interfaceHash: interfaceHash.digest('hex'),
  };
}

async function readStringPair(cursor: ProtoCursor, span: FieldSpan, what: string): Promise<{ key: string; value: string }> {
  let key = '';
  let value = '';
  for (const inner of await cursor.fields(span.dataStart, span.end, what)) {
    if (inner.wire !== WIRE_LEN) continue;
    if (inner.field === 1) key = await cursor.string(inner, what);
    if (inner.field === 2) value = await cursor.string(inner, what);
  }
  return { key, value };
}

/** Packed or unpacked repeated varints (proto3 writers pack; older ones may not). */
async function readVarints(cursor: ProtoCursor, spans: FieldSpan[], what: string): Promise<number[]> {
  const out: number[] = [];
  for (const span of spans) {
    if (span.wire === WIRE_VARINT) {
      out.push(span.value);
      continue;
    }
    const bytes = await cursor.bytes(span.dataStart, span.end);
    for (let at = 0; at < bytes.length; ) {
      const decoded = decodeVarint(bytes, at);
      if (decoded === undefined) throw new InputError(cursor.file, `is not an ONNX model: a varint in ${what} does not end`);
      out.push(decoded.value);
      at = decoded.next;
    }
  }
  return out;
}

async function scanTensor(cursor: ProtoCursor, span: FieldSpan, folder: string): Promise<OnnxInitializer> {
  const file = cursor.file;
  const fields = await cursor.fields(span.dataStart, span.end, 'initializer');
  const nameField = fields.find((inner) => inner.field === TENSOR.name && inner.wire === WIRE_LEN);
  const name = nameField === undefined ? '' : await cursor.string(nameField, 'initializer');
  if (name === '') throw new InputError(file, 'an initializer has no name');
  const fail = (problem: string, hint?: string): InputError => new InputError(file, problem, { tensor: name, hint });
  const dims = await readVarints(
    cursor,
    fields.filter((inner) => inner.field === TENSOR.dims),
    'dims',
  );
  for (const dim of dims) if (!Number.isSafeInteger(dim)) throw fail('has a negative or huge dimension');
  const onnxType = fields.find((inner) => inner.field === TENSOR.dataType && inner.wire === WIRE_VARINT)?.value ?? 0;
  const dtype = ONNX_DTYPES[onnxType];
  if (dtype === undefined) {
    if (QUANTIZED_TYPES[onnxType] !== undefined) {
      throw fail(`is ${QUANTIZED_TYPES[onnxType]}: a quantized model`, 'soup the float models, then quantize');
    }
    throw fail(`has data type ${OTHER_TYPES[onnxType] ?? onnxType}, which is not a numeric type soup can read`);
  }
  const count = numel(dims);
  const bytes = count * dtypeSize(dtype);
  if (!Number.isSafeInteger(bytes)) throw fail(`shape [${dims.join(', ')}] is too large`);
  if (fields.some((inner) => inner.field === TENSOR.segment)) throw fail('is stored in segments, which are not supported');
  const located = fields.find((inner) => inner.field === TENSOR.dataLocation && inner.wire === WIRE_VARINT)?.value ?? 0;
  const base = { name, onnxType, dtype, dims, span, fields };
  if (located === 1) return { ...base, data: await locateExternal(cursor, fields, folder, name, bytes) };
  const raw = fields.filter((inner) => inner.field === TENSOR.rawData);
  const typed = typedField(dtype);
  const packed = fields.filter((inner) => inner.field === typed.field);
  if (raw.length + packed.length === 0) {
    if (count === 0) return { ...base, data: { kind: 'empty' } };
    throw fail(`holds no data for its shape [${dims.join(', ')}]`);
  }
  if (raw.length > 1 || (raw.length === 1 && packed.length > 0) || packed.length > 1 || raw.concat(packed)[0]!.wire !== WIRE_LEN) {
    throw fail('stores its values unpacked or in several fields, which is not supported (re-save the model with onnx.save)');
  }
  const dataSpan = raw[0] ?? packed[0]!;
  const length = dataSpan.end - dataSpan.dataStart;
  const encoding = raw.length === 1 ? 'raw' : typed.encoding;
  const expected = encoding === 'varint' ? undefined : count * (encoding === 'raw' ? dtypeSize(dtype) : encoding === 'fixed32' ? 4 : 8);
  if (expected !== undefined && length !== expected) {
    throw fail(`shape [${dims.join(', ')}] needs ${expected} bytes of ${dtype} data but the model holds ${length} (truncated or corrupt)`);
  }
  // Each varint takes at least one byte and at most ten.
  if (encoding === 'varint' && (length < count || length > count * 10)) {
    throw fail(`shape [${dims.join(', ')}] needs ${count} values but the model holds ${length} bytes of them (truncated or corrupt)`);
  }
  return { ...base, data: { kind: 'inline', span: dataSpan, encoding } };
}

async function locateExternal(cursor: ProtoCursor, fields: FieldSpan[], folder: string, name: string, bytes: number): Promise<TensorData> {
  const file = cursor.file;
  const entries = new Map<string, string>();
  for (const inner of fields) {
    if (inner.field === TENSOR.externalData && inner.wire === WIRE_LEN) {
      const { key, value } = await readStringPair(cursor, inner, 'external_data');
      entries.set(key, value);
    }
  }
  const location = entries.get('location');
  if (location === undefined) throw new InputError(file, 'external data has no location', { tensor: name });
  const dataFile = await resolveInside(folder, location, file).catch((error: unknown) => {
    if (error instanceof InputError) throw new InputError(file, `external data ${error.message.slice(file.length + 2)}`, { tensor: name });
    throw error;
  });
  const size = await fileSize(dataFile);
  const number = (key: string, fallback: number): number => {
    const text = entries.get(key);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text) || !Number.isSafeInteger(value)) throw new InputError(file, `external data ${key} "${text}" is not a byte count`, { tensor: name });
    return value;
  };
  const offset = number('offset', 0);
  const length = number('length', Math.max(0, size - offset));
  if (length !== bytes) throw new InputError(file, `external data length ${length} does not match the ${bytes} bytes its shape needs`, { tensor: name });
  if (offset + length > size) {
    throw new InputError(file, `external data ${offset}..${offset + length} lies beyond the end of ${location} (${size} bytes)`, { tensor: name });
  }
  return { kind: 'external', file: dataFile, offset, length };
}

async function scanNode(cursor: ProtoCursor, span: FieldSpan): Promise<OnnxNode> {
  const fields = await cursor.fields(span.dataStart, span.end, 'node');
  const node: OnnxNode = {
    opType: '',
    domain: '',
    name: '',
    inputs: [],
    outputs: [],
    hash: createHash('sha256')
      .update(await cursor.bytes(span.dataStart, span.end))
      .digest('hex'),
    subgraphInitializers: 0,
    constantFloats: 0,
  };
  for (const inner of fields) {
    if (inner.wire !== WIRE_LEN) continue;
    if (inner.field === NODE.opType) node.opType = await cursor.string(inner, 'node');
    else if (inner.field === NODE.domain) node.domain = await cursor.string(inner, 'node');
    else if (inner.field === NODE.name) node.name = await cursor.string(inner, 'node');
    else if (inner.field === NODE.input) node.inputs.push(await cursor.string(inner, 'node'));
    else if (inner.field === NODE.output) node.outputs.push(await cursor.string(inner, 'node'));
  }
  for (const attribute of fields.filter((inner) => inner.field === NODE.attribute && inner.wire === WIRE_LEN)) {
    for (const value of await cursor.fields(attribute.dataStart, attribute.end, 'attribute')) {
      if (value.wire !== WIRE_LEN) continue;
      if (value.field === ATTRIBUTE.g || value.field === ATTRIBUTE.graphs) {
        const inside = await cursor.fields(value.dataStart, value.end, 'subgraph');
        node.subgraphInitializers += inside.filter((field) => field.field === GRAPH.initializer).length;
      } else if (value.field === ATTRIBUTE.t && node.opType === 'Constant') {
        const tensor = await cursor.fields(value.dataStart, value.end, 'Constant value');
        const type = tensor.find((field) => field.field === TENSOR.dataType)?.value ?? 0;
        if ([1, 10, 11, 16].includes(type))
          node.constantFloats += numel(
            await readVarints(
              cursor,
              tensor.filter((field) => field.field === TENSOR.dims),
              'dims',
            ),
          );
      }
    }
  }
  return node;
}

async function scanValueInfo(cursor: ProtoCursor, span: FieldSpan): Promise<ValueInfo> {
  const info: ValueInfo = { name: '', elemType: 0, dims: [], span };
  for (const field of await cursor.fields(span.dataStart, span.end, 'value_info')) {
    if (field.wire !== WIRE_LEN) continue;
    if (field.field === 1) info.name = await cursor.string(field, 'value_info');
    if (field.field !== 2) continue;
    // TypeProto.tensor_type (1) -> elem_type (1), shape (2) -> dim (1) -> dim_value (1) | dim_param (2)
    for (const type of await cursor.fields(field.dataStart, field.end, 'type')) {
      if (type.field !== 1 || type.wire !== WIRE_LEN) continue;
      for (const tensor of await cursor.fields(type.dataStart, type.end, 'tensor type')) {
        if (tensor.field === 1 && tensor.wire === WIRE_VARINT) info.elemType = tensor.value;
        if (tensor.field !== 2 || tensor.wire !== WIRE_LEN) continue;
        for (const dim of await cursor.fields(tensor.dataStart, tensor.end, 'shape')) {
          if (dim.field !== 1 || dim.wire !== WIRE_LEN) continue;
          let value: number | string | undefined;
          for (const part of await cursor.fields(dim.dataStart, dim.end, 'dim')) {
            if (part.field === 1 && part.wire === WIRE_VARINT) value = part.value;
            if (part.field === 2 && part.wire === WIRE_LEN) value = await cursor.string(part, 'dim');
          }
          info.dims.push(value);
        }
      }
    }
  }
  return info;
}
