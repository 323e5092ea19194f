import assert from 'node:assert/strict';
import { readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeFloats } from '../../src/checkpoint/dtype.js';
import { concatBytes, encodeVarint, lenField, varintField } from '../../src/checkpoint/onnx/protobuf.js';
import { encodeGraph, encodeModel, encodeTensor, tensorAttribute } from '../../src/checkpoint/onnx/build.js';
import { OnnxCheckpoint } from '../../src/checkpoint/onnx/reader.js';
import { fixedMetadata, writeCheckpoint } from '../../src/checkpoint/writer.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';
import { FIXTURES, checkWithOnnx, f32Bytes, linearSpec, readWithOnnx, writeModel } from '../helpers/onnx.js';

const dir = await tempDir('soup-onnx-');

const i64Bytes = (values: bigint[]): Uint8Array => new Uint8Array(new BigInt64Array(values).buffer);
const i32Bytes = (values: number[]): Uint8Array => new Uint8Array(new Int32Array(values).buffer);

async function open(file: string): Promise<OnnxCheckpoint> {
  return OnnxCheckpoint.open(file);
}

describe('reading ONNX initializers', () => {
  it('reads raw_data, the packed typed fields and external data to the same values onnx itself reads', async () => {
    const folder = path.join(dir, 'forms');
    const shape = { dims: [2, 3] };
    const floats = [0.5, -1.25, 3, 1e-3, -7, 2.5];
    const spec = (form: 'raw' | 'typed') => ({
      inputs: [{ name: 'x', dtype: 'F32' as const, dims: ['batch', 3] }],
      outputs: [{ name: 'y', dtype: 'F32' as const, dims: ['batch', 3] }],
      nodes: [{ opType: 'Identity', inputs: ['x'], outputs: ['y'] }],
      initializers: [
        { name: 'f32', dtype: 'F32' as const, ...shape, data: f32Bytes(floats), form },
        { name: 'f64', dtype: 'F64' as const, ...shape, data: new Uint8Array(new Float64Array(floats).buffer), form },
        { name: 'f16', dtype: 'F16' as const, ...shape, data: encodeFloats(floats, 'F16'), form },
        { name: 'bf16', dtype: 'BF16' as const, ...shape, data: encodeFloats(floats, 'BF16'), form },
        { name: 'i64', dtype: 'I64' as const, dims: [3], data: i64Bytes([-1n, 0n, 1234567890123n]), form },
        { name: 'i32', dtype: 'I32' as const, dims: [3], data: i32Bytes([-5, 0, 70000]), form },
      ],
    });
    for (const form of ['raw', 'typed'] as const) {
      const file = await writeModel(path.join(folder, `${form}.onnx`), spec(form));
      const checkpoint = await open(file);
      try {
        assert.deepEqual([...(await checkpoint.readFloats('f32'))], [...new Float32Array(floats)], form);
        assert.deepEqual([...(await checkpoint.readFloats('f64'))], floats, form);
        assert.deepEqual([...(await checkpoint.readFloats('f16'))], [0.5, -1.25, 3, 0.0010004043579101562, -7, 2.5], form);
        assert.deepEqual([...(await checkpoint.readFloatRange('f32', 2, 3))], [...new Float32Array([3, 1e-3, -7])], form);
        assert.deepEqual(new BigInt64Array((await checkpoint.readBytes('i64')).slice().buffer), new BigInt64Array([-1n, 0n, 1234567890123n]), form);
        assert.deepEqual(new Int32Array((await checkpoint.readBytes('i32')).slice().buffer), new Int32Array([-5, 0, 70000]), form);
      } finally {
        await checkpoint.close();
      }
      const reference = readWithOnnx(file);
      assert.deepEqual(reference.initializers.i32, [-5, 0, 70000], `onnx reads our ${form} encoding`);
    }
    // External data: two tensors in one file beside the model, at offsets.
    const data = concatBytes([f32Bytes(floats), f32Bytes([9, 8])]);
    await writeFile(path.join(folder, 'weights.bin'), data);
    const external = await writeModel(path.join(folder, 'external.onnx'), {
      ...spec('raw'),
      initializers: [
        { name: 'a', dtype: 'F32', dims: [2, 3], data: f32Bytes(floats), form: { location: 'weights.bin', offset: 0 } },
        { name: 'b', dtype: 'F32', dims: [2], data: f32Bytes([9, 8]), form: { location: 'weights.bin', offset: 24 } },
      ],
    });
    const checkpoint = await open(external);
    try {
      assert.deepEqual([...(await checkpoint.readFloats('b'))], [9, 8]);
      assert.deepEqual([...(await checkpoint.readFloatRange('a', 1, 2))], [-1.25, 3]);
      assert.deepEqual(checkpoint.files, [external, path.join(folder, 'weights.bin')]);
      assert.equal(checkpoint.tensors()[0]!.storage, 'external data');
    } finally {
      await checkpoint.close();
    }
  });
});

describe('writing ONNX soups', () => {
  it('copies the first ingredient byte for byte outside initializer data, adds the recipe, and onnx.checker accepts it', async () => {
    const out = path.join(dir, 'uniform.onnx');
    const inputs = ['lr1e-4-s1', 'lr3e-4-s2'].map((name) => path.join(FIXTURES, 'onnx', `${name}.onnx`));
    const result = await runSoup(['uniform', ...inputs, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    checkWithOnnx(out);
    const [soup, first] = [await readFile(out), await readFile(inputs[0]!)];
    const reference = await open(inputs[0]!);
    const masked = (bytes: Uint8Array): Buffer => {
      const copy = Buffer.from(bytes.subarray(0, first.length));
      for (const initializer of reference.scan.initializers) {
        if (initializer.data.kind === 'inline') copy.fill(0, initializer.data.span.dataStart, initializer.data.span.end);
      }
      return copy;
    };
    await reference.close();
    const [x, y] = [masked(soup), masked(first)];
    assert.equal(
      x.findIndex((byte, i) => byte !== y[i]),
      -1,
      'same bytes outside initializer data',
    );
    assert.ok(!soup.subarray(0, first.length).equals(first), 'the weights did change');
    const read = readWithOnnx(out);
    const recipe = JSON.parse(read.metadata['soup.recipe']!) as { strategy: string; chosen: string[] };
    assert.equal(recipe.strategy, 'uniform');
    assert.deepEqual(recipe.chosen, ['lr1e-4-s1', 'lr3e-4-s2']);
    const [a, b] = inputs.map((input) => readWithOnnx(input).initializers['dense_2/bias']!);
    read.initializers['dense_2/bias']!.forEach((value, i) => assert.ok(Math.abs(value - (a![i]! + b![i]!) / 2) < 1e-6));
    // A soup of soups replaces the recipe instead of adding a second one.
    const again = path.join(dir, 'again.onnx');
    assert.equal((await runSoup(['uniform', out, inputs[1]!, '-o', again])).code, 0);
    const keys = [...(await readFile(again)).toString('latin1').matchAll(/soup\.recipe/g)];
    assert.equal(keys.length, 1);
  });

  it('writes packed-field and external-data ingredients as one self-contained file that onnx reads back', async () => {
    const folder = path.join(dir, 'mixed-forms');
    const typed = await writeModel(path.join(folder, 'typed.onnx'), linearSpec(1, { form: 'typed' }));
    await writeFile(path.join(folder, 'w.bin'), concatBytes([f32Bytes(Array.from({ length: 6 }, (_, i) => 3 + i / 8)), f32Bytes([1.5, -1.5])]));
    const spec = linearSpec(3);
    spec.initializers[0]!.form = { location: 'w.bin', offset: 0 };
    spec.initializers[1]!.form = { location: 'w.bin', offset: 24 };
    const external = await writeModel(path.join(folder, 'external.onnx'), spec);
    const out = path.join(dir, 'forms-soup.onnx');
    const result = await runSoup(['uniform', external, typed, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    checkWithOnnx(out);
    assert.deepEqual(readWithOnnx(out).initializers['fc.bias'], [1, -1]);
    assert.deepEqual(readWithOnnx(out).initializers['fc.weight'], [2, 2.125, 2.25, 2.375, 2.5, 2.625]);
  });

  it('puts the weights of an output over the size limit in a .data file beside the model', async () => {
    const folder = path.join(dir, 'large');
    const source = await open(await writeModel(path.join(folder, 'in.onnx'), linearSpec(2)));
    const out = path.join(folder, 'out.onnx');
    try {
      const tensors = source.tensors().map(({ name, shape, dtype }) => ({ name, shape, dtype }));
      const result = await writeCheckpoint(
        { kind: 'onnx', path: out, reference: source, externalAbove: 100 },
        tensors,
        fixedMetadata({ 'soup.recipe': '{}' }),
        async function* (tensor) {
          yield encodeFloats(
            Array.from(await source.readFloats(tensor.name), (v) => v * 2),
            'F32',
          );
        },
      );
      assert.deepEqual(result.files, [out, `${out}.data`]);
    } finally {
      await source.close();
    }
    assert.deepEqual(await readdir(folder), ['in.onnx', 'out.onnx', 'out.onnx.data']);
    checkWithOnnx(out);
    assert.deepEqual(readWithOnnx(out).initializers['fc.bias'], [2, -2]);
  });

  it('refuses --dtype for an ONNX soup, since the graph types its initializers', async () => {
    const result = await runSoup(['uniform', path.join(FIXTURES, 'onnx'), '-o', path.join(dir, 'f16.onnx'), '--dtype', 'f16']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      'soup: error: an ONNX soup keeps its initializers\' dtypes (the graph\'s types depend on them): "dense_1/kernel" is F32, not F16 (leave out --dtype, or write a .safetensors file)\n',
    );
  });
});

describe('ONNX ingredients that cannot be souped', () => {
  const refuse = async (name: string, files: string[], args: string[] = []) => {
    const result = await runSoup(['uniform', ...files, '-o', path.join(dir, `${name}-out.onnx`), ...args]);
    return result;
  };

  it('refuses Conv weights with BatchNorm folded in, unless --allow-fused', async () => {
    const spec = (seed: number) => ({
      ...linearSpec(seed, { weightName: 'onnx::Conv_12' }),
    });
    const a = await writeModel(path.join(dir, 'fused', 'a.onnx'), spec(1));
    const b = await writeModel(path.join(dir, 'fused', 'b.onnx'), spec(2));
    const result = await refuse('fused', [a, b]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${a}: has Conv weights with BatchNorm folded in (onnx::Conv_12, and no BatchNormalization node): averaging fused weights is not the same as fusing averaged weights ` +
        '(export with training=torch.onnx.TrainingMode.PRESERVE and do_constant_folding=False (in eval mode torch.onnx.export folds BatchNorm into Conv), ' +
        'or pass --allow-fused to soup them anyway)\n',
    );
    assert.equal((await refuse('fused-allowed', [a, b], ['--allow-fused'])).code, 0);
  });

  it('refuses quantized models, sparse initializers, weights in subgraphs and in Constant nodes', async () => {
    const base = linearSpec(1);
    const cases: [string, Uint8Array, string][] = [
      [
        'quantized',
        encodeModel({ ...base, nodes: [...base.nodes, { opType: 'DequantizeLinear', inputs: ['y', 'fc.bias'], outputs: ['z'] }] }),
        'is a quantized model (DequantizeLinear at node 1): averaging quantized weights does not average the model (soup the float models, then quantize)',
      ],
      [
        'int8',
        encodeModel({ ...base, initializers: [...base.initializers, { name: 'q', dtype: 'I8', dims: [2, 2], data: new Uint8Array(4) }] }),
        'tensor "q": is a quantized model (I8 weights) (soup the float models, then quantize)',
      ],
      [
        'sparse',
        encodeModel({ ...base, extraGraphFields: [lenField(15, lenField(1, encodeTensor({ name: 's', dtype: 'F32', dims: [1], data: f32Bytes([1]) })))] }),
        'has 1 sparse initializer(s): not supported yet (store the weights dense and export again)',
      ],
      [
        'subgraph',
        encodeModel({
          ...base,
          nodes: [
            ...base.nodes,
            {
              opType: 'If',
              inputs: ['cond'],
              outputs: ['z'],
              attributes: [concatBytes([lenField(1, 'then_branch'), lenField(6, encodeGraph({ ...linearSpec(2), inputs: [] })), varintField(20, 5)])],
            },
          ],
        }),
        'has weights inside a subgraph (If at node 1): not supported yet (export with the weights as initializers of the main graph)',
      ],
      [
        'constant',
        encodeModel({
          ...base,
          nodes: [
            ...base.nodes,
            {
              opType: 'Constant',
              name: 'emb',
              inputs: [],
              outputs: ['c'],
              attributes: [tensorAttribute('value', { name: 'c', dtype: 'F32', dims: [10, 10], data: new Uint8Array(400) })],
            },
          ],
        }),
        'has weights in a Constant node (node 1 "emb", 100 values): not supported yet (export with the weights as initializers (torch.onnx.export does this for parameters with do_constant_folding=False))',
      ],
    ];
    for (const [name, bytes, message] of cases) {
      const file = await writeModel(path.join(dir, 'refused', `${name}.onnx`), bytes);
      const result = await refuse(name, [file]);
      assert.equal(result.code, 2, name);
      assert.equal(result.stderr, `soup: error: ${file}: ${message}\n`, name);
    }
  });

  it('names the first difference between ingredients that are not exports of one architecture', async () => {
    const folder = path.join(dir, 'differ');
    const a = await writeModel(path.join(folder, 'a.onnx'), linearSpec(1));
    const wider = linearSpec(2);
    wider.initializers[0] = { name: 'fc.weight', dtype: 'F32', dims: [4, 2], data: new Uint8Array(32) };
    const b = await writeModel(path.join(folder, 'b.onnx'), wider);
    const c = await writeModel(path.join(folder, 'c.onnx'), linearSpec(3, { op: 'MatMul' }));
    const shapes = await refuse('differ-shape', [a, b]);
    assert.equal(shapes.stderr, `soup: error: ${a} and ${b} are not exports of the same architecture: fc.weight is [3, 2] in one and [4, 2] in the other\n`);
    const nodes = await refuse('differ-node', [a, c]);
    assert.equal(
      nodes.stderr,
      `soup: error: the graphs of ${a} and ${c} differ at node 0 (Gemm vs MatMul): export every ingredient with the same torch version, opset and flags\n`,
    );
    const shape = (values: bigint[]) => ({ name: 'shape', dtype: 'I64' as const, dims: [2], data: new Uint8Array(new BigInt64Array(values).buffer) });
    const d = await writeModel(path.join(folder, 'd.onnx'), linearSpec(1, { extra: [shape([1n, 6n])] }));
    const e = await writeModel(path.join(folder, 'e.onnx'), linearSpec(2, { extra: [shape([6n, 1n])] }));
    const ints = await refuse('differ-int', [d, e]);
    assert.equal(ints.code, 2);
    assert.equal(
      ints.stderr,
      `soup: error: I64 initializer "shape" differs between ${d} and ${e}: integer and bool initializers are shape constants and must be identical\n`,
    );
  });
});

describe('malformed ONNX files', () => {
  const tensorModel = (tensor: Uint8Array): Uint8Array =>
    concatBytes([varintField(1, 8), lenField(7, concatBytes([lenField(5, tensor)])), lenField(8, concatBytes([lenField(1, ''), varintField(2, 17)]))]);
  const rawTensor = (dims: number[], dataType: number, bytes: number) =>
    concatBytes([
      lenField(1, concatBytes(dims.map((dim) => encodeVarint(dim)))),
      varintField(2, dataType),
      lenField(8, 'w'),
      lenField(9, new Uint8Array(bytes)),
    ]);

  it('gives exit 2 and one line naming the file for every kind of bad file', async () => {
    const folder = path.join(dir, 'hostile');
    const fixture = await readFile(path.join(FIXTURES, 'onnx', 'lr1e-4-s1.onnx'));
    await writeFile(path.join(folder, '..', 'outside.bin'), new Uint8Array(8)).catch(() => {});
    const external = (location: string) =>
      encodeModel({ ...linearSpec(1), initializers: [{ name: 'fc.weight', dtype: 'F32', dims: [2], data: new Uint8Array(8), form: { location, offset: 0 } }] });
    const cases: [string, Uint8Array, (file: string) => string][] = [
      [
        'truncated',
        fixture.subarray(0, 1000),
        (file) => `${file}: is truncated or not an ONNX model: a field of the model at byte 8 runs past the end (204098 > 1000)`,
      ],
      ['text', new TextEncoder().encode('{"not": "protobuf"}'), (file) => `${file}: is not an ONNX model (protobuf): wire type 3 in the model at byte 0`],
      [
        'outside',
        external('../outside.bin'),
        (file) => `${file}: tensor "fc.weight": external data path "../outside.bin" points outside the checkpoint folder`,
      ],
      ['absolute', external('/etc/passwd'), (file) => `${file}: tensor "fc.weight": external data path "/etc/passwd" points outside the checkpoint folder`],
      [
        'missing',
        external('gone.bin'),
        (file) => `${file}: tensor "fc.weight": external data names "gone.bin", which cannot be opened: no such file or directory`,
      ],
      ['huge', tensorModel(rawTensor([2 ** 40, 2 ** 40], 1, 4)), (file) => `${file}: tensor "w": shape [1099511627776, 1099511627776] is too large`],
      [
        'short',
        tensorModel(rawTensor([10], 1, 36)),
        (file) => `${file}: tensor "w": shape [10] needs 40 bytes of F32 data but the model holds 36 (truncated or corrupt)`,
      ],
      ['dtype', tensorModel(rawTensor([1], 99, 4)), (file) => `${file}: tensor "w": has data type 99, which is not a numeric type soup can read`],
    ];
    for (const [name, bytes, message] of cases) {
      const file = await writeModel(path.join(folder, `${name}.onnx`), bytes);
      const result = await runSoup(['inspect', file]);
      assert.equal(result.code, 2, `${name}: ${result.stderr}`);
      assert.equal(result.stderr, `soup: error: ${message(file)}\n`, name);
    }
  });
});
