/**
 * Encodes small ONNX models from a plain description: the fixture script writes the shipped ONNX
 * fixtures with it, and tests build every storage form and every malformed case with it.
 */
import type { DType } from '../dtype.js';
import { concatBytes, encodeVarint, lenField, packedVarints, varintField } from './protobuf.js';
import { ONNX_TYPE_OF, TENSOR, typedField } from './scan.js';

export type TensorForm = 'raw' | 'typed' | { location: string; offset: number };

export interface InitializerSpec {
  name: string;
  dtype: DType;
  dims: number[];
  /** Little-endian values in `dtype`. */
  data: Uint8Array;
  form?: TensorForm;
}

export interface ValueSpec {
  name: string;
  dtype: DType;
  dims: (number | string)[];
}

export interface NodeSpec {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** Encoded AttributeProtos (intAttribute, intsAttribute, tensorAttribute). */
  attributes?: Uint8Array[];
}

export interface ModelSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  nodes: NodeSpec[];
  initializers: InitializerSpec[];
  opset?: number;
  irVersion?: number;
  metadata?: Record<string, string>;
  graphName?: string;
  /** Encoded GraphProto fields appended as they are (sparse initializers, in tests). */
  extraGraphFields?: Uint8Array[];
}

export function intAttribute(name: string, value: number): Uint8Array {
  return concatBytes([lenField(1, name), varintField(3, value), varintField(20, 2)]);
}

export function intsAttribute(name: string, values: number[]): Uint8Array {
  return concatBytes([lenField(1, name), packedVarints(8, values), varintField(20, 7)]);
}

export function tensorAttribute(name: string, tensor: InitializerSpec): Uint8Array {
  return concatBytes([lenField(1, name), lenField(5, encodeTensor(tensor)), varintField(20, 4)]);
}

/** A TensorProto holding `spec`'s values in raw_data, the dtype's typed field, or an external file. */
export function encodeTensor(spec: InitializerSpec): Uint8Array {
  const parts = [packedVarints(TENSOR.dims, spec.dims), varintField(TENSOR.dataType, ONNX_TYPE_OF[spec.dtype]!), lenField(TENSOR.name, spec.name)];
  const form = spec.form ?? 'raw';
  if (form === 'raw') {
    parts.push(lenField(TENSOR.rawData, spec.data));
  } else if (form === 'typed') {
    const typed = typedField(spec.dtype);
    if (typed.encoding !== 'varint') parts.push(lenField(typed.field, spec.data));
    else parts.push(lenField(typed.field, concatBytes(littleEndianIntegers(spec.data, spec.dtype).map((value) => encodeVarint(value)))));
  } else {
    const entry = (key: string, value: string): Uint8Array => lenField(TENSOR.externalData, concatBytes([lenField(1, key), lenField(2, value)]));
    parts.push(
      entry('location', form.location),
      entry('offset', String(form.offset)),
      entry('length', String(spec.data.byteLength)),
      varintField(TENSOR.dataLocation, 1),
    );
  }
  return concatBytes(parts);
}

function littleEndianIntegers(bytes: Uint8Array, dtype: DType): bigint[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: bigint[] = [];
  const size = { I64: 8, U64: 8, U32: 4, I32: 4, F16: 2, BF16: 2, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1 }[dtype as string];
  if (size === undefined) throw new Error(`no integer encoding for ${dtype}`);
  for (let at = 0; at < bytes.byteLength; at += size) {
    if (dtype === 'I64') out.push(view.getBigInt64(at, true));
    else if (dtype === 'U64') out.push(view.getBigUint64(at, true));
    else if (dtype === 'I32') out.push(BigInt(view.getInt32(at, true)));
    else if (dtype === 'I16') out.push(BigInt(view.getInt16(at, true)));
    else if (dtype === 'I8') out.push(BigInt(view.getInt8(at)));
    else out.push(BigInt(size === 4 ? view.getUint32(at, true) : size === 2 ? view.getUint16(at, true) : view.getUint8(at)));
  }
  return out;
}

function encodeValueInfo(spec: ValueSpec): Uint8Array {
  const dims = spec.dims.map((dim) => lenField(1, typeof dim === 'number' ? varintField(1, dim) : lenField(2, dim)));
  const tensorType = concatBytes([varintField(1, ONNX_TYPE_OF[spec.dtype]!), lenField(2, concatBytes(dims))]);
  return concatBytes([lenField(1, spec.name), lenField(2, lenField(1, tensorType))]);
}

function encodeNode(spec: NodeSpec): Uint8Array {
  return concatBytes([
    ...spec.inputs.map((input) => lenField(1, input)),
    ...spec.outputs.map((output) => lenField(2, output)),
    ...(spec.name === undefined ? [] : [lenField(3, spec.name)]),
    lenField(4, spec.opType),
    ...(spec.attributes ?? []).map((attribute) => lenField(5, attribute)),
  ]);
}

export function encodeModel(spec: ModelSpec): Uint8Array {
  return concatBytes([
    varintField(1, spec.irVersion ?? 8),
    lenField(2, 'soup'),
    lenField(7, encodeGraph(spec)),
    lenField(8, concatBytes([lenField(1, ''), varintField(2, spec.opset ?? 17)])),
    ...Object.entries(spec.metadata ?? {}).map(([key, value]) => lenField(14, concatBytes([lenField(1, key), lenField(2, value)]))),
  ]);
}

/** A GraphProto (also the body of an If or Loop node's subgraph attribute). */
export function encodeGraph(spec: Omit<ModelSpec, 'opset' | 'irVersion' | 'metadata'>): Uint8Array {
  return concatBytes([
    ...spec.nodes.map((node) => lenField(1, encodeNode(node))),
    lenField(2, spec.graphName ?? 'main_graph'),
    ...spec.initializers.map((initializer) => lenField(5, encodeTensor(initializer))),
    ...spec.inputs.map((input) => lenField(11, encodeValueInfo(input))),
    ...spec.outputs.map((output) => lenField(12, encodeValueInfo(output))),
    ...(spec.extraGraphFields ?? []),
  ]);
}
