/**
 * The ONNX fixture models, described for src/checkpoint/onnx/build.ts: the shipped TF.js MLP
 * (784-64-10, relu, softmax) as an ONNX graph with the same weight names, and a tiny model with an
 * int64 and a float input for multi-input scoring.
 */
import type { InitializerSpec, ModelSpec, TensorForm } from '../src/checkpoint/onnx/build.js';
import { intAttribute, intsAttribute } from '../src/checkpoint/onnx/build.js';
import type { Checkpoint } from '../src/checkpoint/types.js';

/** The TF.js Sequential model: Dense(64, relu) then Dense(10, softmax); Gemm takes the [in, out] kernels as they are. */
export async function mlpModelSpec(checkpoint: Checkpoint, form: TensorForm = 'raw'): Promise<ModelSpec> {
  const initializers: InitializerSpec[] = [];
  for (const tensor of checkpoint.tensors()) {
    const values = await checkpoint.readFloats(tensor.name);
    initializers.push({ name: tensor.name, dtype: 'F32', dims: tensor.shape, data: new Uint8Array(values.buffer, values.byteOffset, values.byteLength), form });
  }
  return {
    inputs: [{ name: 'x', dtype: 'F32', dims: ['batch', 784] }],
    outputs: [{ name: 'probabilities', dtype: 'F32', dims: ['batch', 10] }],
    nodes: [
      { opType: 'Gemm', name: '/dense_1/Gemm', inputs: ['x', 'dense_1/kernel', 'dense_1/bias'], outputs: ['/dense_1/Gemm_output_0'] },
      { opType: 'Relu', name: '/dense_1/Relu', inputs: ['/dense_1/Gemm_output_0'], outputs: ['/dense_1/Relu_output_0'] },
      { opType: 'Gemm', name: '/dense_2/Gemm', inputs: ['/dense_1/Relu_output_0', 'dense_2/kernel', 'dense_2/bias'], outputs: ['/dense_2/Gemm_output_0'] },
      { opType: 'Softmax', name: '/dense_2/Softmax', inputs: ['/dense_2/Gemm_output_0'], outputs: ['probabilities'], attributes: [intAttribute('axis', -1)] },
    ],
    initializers,
  };
}

export const MULTI_VOCABULARY = 8;
export const MULTI_TOKENS = 4;
export const MULTI_FEATURES = 3;
export const MULTI_CLASSES = 3;
const EMBEDDING = 5;

/** Weights of the multi-input model, from a fixed formula so the script needs no randomness. */
export function multiWeights(): { embedding: Float32Array; kernel: Float32Array; bias: Float32Array } {
  const embedding = Float32Array.from({ length: MULTI_VOCABULARY * EMBEDDING }, (_, i) => Math.sin(i * 1.7));
  const kernel = Float32Array.from({ length: (EMBEDDING + MULTI_FEATURES) * MULTI_CLASSES }, (_, i) => Math.cos(i * 0.9));
  const bias = Float32Array.from({ length: MULTI_CLASSES }, (_, i) => 0.1 * i);
  return { embedding, kernel, bias };
}

const bytesOf = (values: Float32Array): Uint8Array => new Uint8Array(values.buffer, values.byteOffset, values.byteLength);

/** logits = Gemm(concat(mean(embedding[input_ids]), features)): a text-like int64 input beside a float one. */
export function multiInputSpec(): ModelSpec {
  const { embedding, kernel, bias } = multiWeights();
  return {
    inputs: [
      { name: 'input_ids', dtype: 'I64', dims: ['batch', MULTI_TOKENS] },
      { name: 'features', dtype: 'F32', dims: ['batch', MULTI_FEATURES] },
    ],
    outputs: [{ name: 'logits', dtype: 'F32', dims: ['batch', MULTI_CLASSES] }],
    nodes: [
      { opType: 'Gather', name: '/embed/Gather', inputs: ['embed.weight', 'input_ids'], outputs: ['embedded'] },
      {
        opType: 'ReduceMean',
        name: '/pool/ReduceMean',
        inputs: ['embedded'],
        outputs: ['pooled'],
        attributes: [intsAttribute('axes', [1]), intAttribute('keepdims', 0)],
      },
      { opType: 'Concat', name: '/Concat', inputs: ['pooled', 'features'], outputs: ['joined'], attributes: [intAttribute('axis', 1)] },
      { opType: 'Gemm', name: '/head/Gemm', inputs: ['joined', 'head.weight', 'head.bias'], outputs: ['logits'] },
    ],
    initializers: [
      { name: 'embed.weight', dtype: 'F32', dims: [MULTI_VOCABULARY, EMBEDDING], data: bytesOf(embedding) },
      { name: 'head.weight', dtype: 'F32', dims: [EMBEDDING + MULTI_FEATURES, MULTI_CLASSES], data: bytesOf(kernel) },
      { name: 'head.bias', dtype: 'F32', dims: [MULTI_CLASSES], data: bytesOf(bias) },
    ],
  };
}

/** The multi-input model's logits, computed by hand: the labels of its data are their argmax. */
export function multiInputLogits(ids: ArrayLike<number>, features: ArrayLike<number>, n: number): Float32Array {
  const { embedding, kernel, bias } = multiWeights();
  const out = new Float32Array(n * MULTI_CLASSES);
  for (let s = 0; s < n; s++) {
    const joined = new Float64Array(EMBEDDING + MULTI_FEATURES);
    for (let t = 0; t < MULTI_TOKENS; t++)
      for (let e = 0; e < EMBEDDING; e++) joined[e]! += embedding[ids[s * MULTI_TOKENS + t]! * EMBEDDING + e]! / MULTI_TOKENS;
    for (let f = 0; f < MULTI_FEATURES; f++) joined[EMBEDDING + f] = features[s * MULTI_FEATURES + f]!;
    for (let c = 0; c < MULTI_CLASSES; c++) {
      let sum = bias[c]!;
      for (let j = 0; j < joined.length; j++) sum += joined[j]! * kernel[j * MULTI_CLASSES + c]!;
      out[s * MULTI_CLASSES + c] = sum;
    }
  }
  return out;
}
