import { execFileSync } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeModel, type InitializerSpec, type ModelSpec, type TensorForm } from '../../src/checkpoint/onnx/build.js';

export const FIXTURES = fileURLToPath(new URL('../../../fixtures/', import.meta.url));

export const f32Bytes = (values: number[]): Uint8Array => new Uint8Array(new Float32Array(values).buffer);

/** y = Gemm(x, fc.weight, fc.bias): x [batch, 3] -> y [batch, 2], weights derived from `seed`. */
export function linearSpec(
  seed: number,
  options: { form?: TensorForm; weightName?: string; op?: 'Gemm' | 'MatMul'; extra?: InitializerSpec[] } = {},
): ModelSpec {
  const weight = Array.from({ length: 6 }, (_, i) => seed + i / 8);
  const bias = [seed / 2, -seed / 2];
  const weightName = options.weightName ?? 'fc.weight';
  const nodes =
    options.op === 'MatMul'
      ? [
          { opType: 'MatMul', inputs: ['x', weightName], outputs: ['h'] },
          { opType: 'Add', inputs: ['h', 'fc.bias'], outputs: ['y'] },
        ]
      : [{ opType: 'Gemm', inputs: ['x', weightName, 'fc.bias'], outputs: ['y'] }];
  return {
    inputs: [{ name: 'x', dtype: 'F32', dims: ['batch', 3] }],
    outputs: [{ name: 'y', dtype: 'F32', dims: ['batch', 2] }],
    nodes,
    initializers: [
      { name: weightName, dtype: 'F32', dims: [3, 2], data: f32Bytes(weight), form: options.form ?? 'raw' },
      { name: 'fc.bias', dtype: 'F32', dims: [2], data: f32Bytes(bias), form: options.form ?? 'raw' },
      ...(options.extra ?? []),
    ],
  };
}

export async function writeModel(file: string, spec: ModelSpec | Uint8Array): Promise<string> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, spec instanceof Uint8Array ? spec : encodeModel(spec));
  return file;
}

/**
 * Runs Debian's onnx.checker (full check, shapes included) on a model file; throws with its message if
 * it refuses. The model is loaded first: given a path, the full check writes inferred shapes back into the file.
 */
export function checkWithOnnx(file: string): void {
  execFileSync('/usr/bin/python3', ['-c', 'import onnx, sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)', file], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Reads initializer values and metadata with Debian's onnx, independently of our reader. */
export function readWithOnnx(file: string): { initializers: Record<string, number[]>; metadata: Record<string, string> } {
  const script = [
    'import json, sys, onnx',
    'from onnx import numpy_helper',
    'm = onnx.load(sys.argv[1])',
    'print(json.dumps({"initializers": {t.name: numpy_helper.to_array(t).astype("float64").ravel().tolist() for t in m.graph.initializer}, "metadata": {p.key: p.value for p in m.metadata_props}}))',
  ].join('\n');
  return JSON.parse(execFileSync('/usr/bin/python3', ['-c', script, file], { encoding: 'utf8', maxBuffer: 64 << 20 })) as ReturnType<typeof readWithOnnx>;
}
