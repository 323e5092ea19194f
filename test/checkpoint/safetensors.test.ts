import assert from 'node:assert/strict';
import { open, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { encodeFloats } from '../../src/checkpoint/dtype.js';
import { MAX_HEADER_BYTES, SafetensorsFile, encodeSafetensorsHeader, findDuplicateKey, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { InputError } from '../../src/errors.js';
import { f32, rawSafetensors, safetensorsBytes, tempDir, once } from '../helpers/files.js';

const dir = await tempDir();
let counter = 0;
async function fileWith(bytes: Uint8Array): Promise<string> {
  const file = path.join(dir, `case-${counter++}.safetensors`);
  await writeFile(file, bytes);
  return file;
}

async function openError(bytes: Uint8Array): Promise<InputError> {
  const file = await fileWith(bytes);
  try {
    await SafetensorsFile.open(file);
  } catch (error) {
    assert.ok(error instanceof InputError, `expected an InputError, got ${String(error)}`);
    assert.ok(error.message.startsWith(file), `message names the file: ${error.message}`);
    assert.equal(error.exitCode, 2);
    return error;
  }
  assert.fail('the file was accepted');
}

describe('SafetensorsFile', () => {
  it('reads names, dtypes, shapes, metadata and values of a file built by hand', async () => {
    const file = await fileWith(
      safetensorsBytes(
        {
          'a.weight': { dtype: 'F32', shape: [2, 2], values: [1, 2, 3, 4] },
          step: { dtype: 'I64', shape: [], bytes: new Uint8Array(new BigInt64Array([7n]).buffer) },
          half: { dtype: 'F16', shape: [2], bytes: encodeFloats([0.5, -1], 'F16') },
          brain: { dtype: 'BF16', shape: [1], bytes: encodeFloats([3.140625], 'BF16') },
        },
        { format: 'pt' },
      ),
    );
    const checkpoint = await SafetensorsFile.open(file);
    assert.equal(checkpoint.name, path.basename(file, '.safetensors'));
    assert.deepEqual(checkpoint.metadata, { format: 'pt' });
    assert.deepEqual(
      checkpoint.tensors().map(({ name, dtype, shape }) => ({ name, dtype, shape })),
      [
        { name: 'a.weight', dtype: 'F32', shape: [2, 2] },
        { name: 'step', dtype: 'I64', shape: [] },
        { name: 'half', dtype: 'F16', shape: [2] },
        { name: 'brain', dtype: 'BF16', shape: [1] },
      ],
    );
    assert.deepEqual([...(await checkpoint.readFloats('a.weight'))], [1, 2, 3, 4]);
    assert.deepEqual([...(await checkpoint.readFloats('half'))], [0.5, -1]);
    assert.deepEqual([...(await checkpoint.readFloats('brain'))], [3.140625]);
    assert.deepEqual([...new BigInt64Array((await checkpoint.readBytes('step')).buffer)], [7n]);
    await checkpoint.close();
  });

  it('accepts a file with no tensors and a zero-sized tensor', async () => {
    const empty = await SafetensorsFile.open(await fileWith(rawSafetensors('{}')));
    assert.equal(empty.tensors().length, 0);
    const zero = await SafetensorsFile.open(await fileWith(safetensorsBytes({ z: { dtype: 'F32', shape: [0, 3], values: [] } })));
    assert.deepEqual([...(await zero.readFloats('z'))], []);
  });

  it('refuses a file shorter than the 8-byte length prefix', async () => {
    const error = await openError(new Uint8Array(5));
    assert.match(error.message, /5 bytes, too short for a safetensors header/);
  });

  it('refuses a header length over 100 MB without allocating it', async () => {
    const error = await openError(rawSafetensors('{}', [], BigInt(MAX_HEADER_BYTES) + 1n));
    assert.match(error.message, /header length 100000001 is larger than the 100000000-byte limit/);
  });

  it('refuses a header length that runs past the end of the file', async () => {
    const error = await openError(rawSafetensors('{}', [], 4096n));
    assert.match(error.message, /header length 4096 runs past the end of the 10-byte file/);
  });

  it('refuses a header that is not UTF-8', async () => {
    const bytes = rawSafetensors('{"a":1}');
    bytes[9] = 0xff;
    assert.match((await openError(bytes)).message, /header is not valid UTF-8/);
  });

  it('refuses a header that is not JSON, or not a JSON object', async () => {
    assert.match((await openError(rawSafetensors('{"a": '))).message, /header is not valid JSON/);
    assert.match((await openError(rawSafetensors('[1, 2]'))).message, /header is not a JSON object/);
  });

  it('refuses an unknown dtype, naming the tensor', async () => {
    const error = await openError(rawSafetensors('{"w":{"dtype":"F12","shape":[1],"data_offsets":[0,4]}}', [f32([1])]));
    assert.equal(error.tensor, 'w');
    assert.match(error.message, /tensor "w": unknown or unsupported dtype "F12"/);
  });

  it('refuses a malformed entry, saying which field is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['"w":[1,2]', /tensor "w": malformed header entry: entry: expected an object/],
      ['"w":{"dtype":32,"shape":[1],"data_offsets":[0,4]}', /tensor "w": malformed header entry: dtype: expected a string/],
      ['"w":{"dtype":"F32","shape":"1","data_offsets":[0,4]}', /tensor "w": malformed header entry: shape: expected an array/],
      ['"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}', /tensor "w": malformed header entry: data_offsets: expected \[begin, end\]/],
      ['"w":{"dtype":"F32","shape":[1]}', /tensor "w": malformed header entry: data_offsets: expected \[begin, end\]/],
      ['"w":{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}', /tensor "w": malformed header entry: data_offsets\.1: expected a non-negative integer/],
    ];
    for (const [entry, message] of cases) {
      const error = await openError(rawSafetensors(`{${entry}}`, [f32([1])]));
      assert.equal(error.tensor, 'w', entry);
      assert.match(error.message, message, entry);
    }
  });

  it('refuses negative or fractional shapes', async () => {
    const negative = await openError(rawSafetensors('{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}', [f32([1])]));
    assert.match(negative.message, /tensor "w": malformed header entry: shape\.0: /);
    const fractional = await openError(rawSafetensors('{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}', [f32([1])]));
    assert.match(fractional.message, /tensor "w": malformed header entry: shape\.0/);
  });

  it('refuses offsets whose span does not match the shape and dtype', async () => {
    const error = await openError(rawSafetensors('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}', [f32([1])]));
    assert.match(error.message, /tensor "w": data_offsets \[0, 4\] span 4 bytes but shape \[2\] of F32 needs 8/);
  });

  it('refuses offsets that end before they begin', async () => {
    const error = await openError(rawSafetensors('{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}', [f32([1])]));
    assert.match(error.message, /data_offsets \[4, 0\] end before they begin/);
  });

  it('refuses a gap between tensors', async () => {
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}';
    const error = await openError(rawSafetensors(header, [f32([1, 2, 3])]));
    assert.match(error.message, /tensor "b": data_offsets \[8, 12\] leaves a gap: data should start at 4/);
  });

  it('refuses overlapping tensors', async () => {
    const header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const error = await openError(rawSafetensors(header, [f32([1, 2])]));
    assert.match(error.message, /data_offsets \[4, 8\] overlaps the previous tensor/);
  });

  it('refuses data that stops before the end of the file (trailing bytes)', async () => {
    const error = await openError(rawSafetensors('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', [f32([1, 2])]));
    assert.match(error.message, /tensor data ends at byte 4 but the file holds 8 data bytes: the file has trailing bytes/);
  });

  it('refuses a truncated file', async () => {
    const whole = safetensorsBytes({ a: { dtype: 'F32', shape: [4], values: [1, 2, 3, 4] } });
    const error = await openError(whole.subarray(0, whole.length - 3));
    assert.match(error.message, /ends at byte 16 but the file holds 13 data bytes: the file is truncated/);
  });

  it('refuses duplicate tensor names', async () => {
    const header = '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}';
    const error = await openError(rawSafetensors(header, [f32([1, 2])]));
    assert.match(error.message, /tensor "a": duplicate tensor name in header/);
  });

  it('refuses __metadata__ that is not a string-to-string map', async () => {
    const error = await openError(rawSafetensors('{"__metadata__":{"epochs":3}}'));
    assert.match(error.message, /__metadata__ must map strings to strings/);
  });
});

describe('findDuplicateKey', () => {
  it('looks only at top-level keys and understands escapes', () => {
    assert.equal(findDuplicateKey('{"a":{"x":1,"x":2},"b":[{"a":1}]}'), undefined);
    assert.equal(findDuplicateKey('{"a\\"b":1,"c":"a\\"b","a\\"b":2}'), 'a"b');
  });
});

describe('writeSafetensors', () => {
  it('pads the header with spaces to a multiple of 8 bytes', () => {
    const header = encodeSafetensorsHeader([{ name: 'w', shape: [1], dtype: 'F32' }], {});
    const length = Number(Buffer.from(header).readBigUInt64LE(0));
    assert.equal(length % 8, 0);
    assert.equal(header.length, 8 + length);
    const text = Buffer.from(header.subarray(8)).toString('utf8');
    assert.equal(text.trimEnd(), '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}');
    assert.match(text, / +$/);
  });

  it('keeps tensor order, including integer-like names that JSON objects would reorder', () => {
    const header = encodeSafetensorsHeader(
      [
        { name: 'b', shape: [1], dtype: 'F32' },
        { name: '1', shape: [1], dtype: 'F32' },
      ],
      {},
    );
    assert.ok(Buffer.from(header.subarray(8)).toString().startsWith('{"b":'));
  });

  it('writes every chunk intact when a producer alternates two buffers and reuses each as soon as it may', async () => {
    const file = path.join(dir, 'alternating.safetensors');
    const handle = await open(file, 'w');
    const [chunks, size] = [64, 256 * 1024];
    const tensors = [0, 1].map((t) => ({ name: `t${t}`, shape: [(chunks / 2) * size], dtype: 'U8' as const }));
    const buffers = [new Uint8Array(size), new Uint8Array(size)];
    let next = 0;
    const produce = Object.assign(
      async function* () {
        for (let i = 0; i < chunks / 2; i++, next++) {
          // Reused now: the buffer of the chunk before last, which the writer must have finished writing.
          yield buffers[next % 2]!.fill(next % 251);
        }
      },
      { alternatesBuffers: true },
    );
    await writeSafetensors(handle, file, tensors, {}, produce);
    await handle.close();
    const back = await SafetensorsFile.open(file);
    const written = Buffer.concat([await back.readBytes('t0'), await back.readBytes('t1')]);
    await back.close();
    const expected = Buffer.concat(Array.from({ length: chunks }, (_, k) => Buffer.alloc(size, k % 251)));
    assert.ok(written.equals(expected), 'a chunk was overwritten before it was written');
  });

  it('writes a file that reads back identically, metadata first', async () => {
    const file = path.join(dir, 'written.safetensors');
    const handle = await open(file, 'w');
    const tensors = [
      { name: 'w', shape: [2], dtype: 'F16' as const },
      { name: 'n', shape: [1], dtype: 'I32' as const },
    ];
    const data = [encodeFloats([1.5, -2], 'F16'), new Uint8Array(new Int32Array([42]).buffer)];
    await writeSafetensors(handle, file, tensors, { format: 'pt' }, (_, index) => once(data[index]!));
    await handle.close();
    const back = await SafetensorsFile.open(file);
    assert.deepEqual(back.metadata, { format: 'pt' });
    assert.deepEqual([...(await back.readFloats('w'))], [1.5, -2]);
    assert.deepEqual([...new Int32Array((await back.readBytes('n')).buffer)], [42]);
    await back.close();
    assert.match((await readFile(file)).subarray(8, 30).toString(), /^\{"__metadata__":/);
  });
});
