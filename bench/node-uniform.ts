/**
 * A baseline for the bench: the least a uniform soup in Node can do, as numpy_uniform.py does it.
 * No CLI, no checks of the headers, no hashes or recipe, the output truncated and written in place;
 * the same synchronous reads and WebAssembly kernel as soup. Next to numpy it shows what Node itself
 * costs; next to soup, what soup's checks and guarantees cost.
 *
 * Usage: node dist/bench/node-uniform.js OUT IN1 IN2 ...  (float32 tensors, as make-checkpoints.ts writes them)
 */
import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { WasmKernel } from '../src/soup/kernel/wasm.js';

interface Entry {
  shape: number[];
  data_offsets: [number, number];
}

const CHUNK = 196_608;
const [out, ...inputs] = process.argv.slice(2);
if (out === undefined || inputs.length === 0) throw new Error('usage: node-uniform.js OUT IN1 IN2 ...');

const files = inputs.map((file) => openSync(file, 'r'));
const headers = files.map((fd) => {
  const length = Buffer.alloc(8);
  readSync(fd, length, 0, 8, 0);
  const text = Buffer.alloc(Number(length.readBigUInt64LE()));
  readSync(fd, text, 0, text.length, 8);
  const entries = JSON.parse(text.toString('utf8')) as Record<string, Entry>;
  delete entries.__metadata__;
  return { entries, dataStart: 8 + text.length };
});
const first = headers[0]!.entries;
const names = Object.keys(first).sort((a, b) => first[a]!.data_offsets[0] - first[b]!.data_offsets[0]);

let offset = 0;
const outEntries: Record<string, unknown> = {};
for (const name of names) {
  const [begin, end] = first[name]!.data_offsets;
  outEntries[name] = { dtype: 'F32', shape: first[name]!.shape, data_offsets: [offset, offset + end - begin] };
  offset += end - begin;
}
let headerText = JSON.stringify(outEntries);
headerText += ' '.repeat((8 - (headerText.length % 8)) % 8);
const headerLength = Buffer.alloc(8);
headerLength.writeBigUInt64LE(BigInt(headerText.length));

const kernel = WasmKernel.create((inputs.length + 1) * CHUNK * 4 + 1024);
if (kernel === undefined) throw new Error('WebAssembly SIMD is not available');
const buffers = inputs.map(() => kernel.allocate(CHUNK * 4));
const outBuffer = kernel.allocate(CHUNK * 4);
const output = openSync(out, 'w');
writeSync(output, headerLength);
writeSync(output, Buffer.from(headerText));
for (const name of names) {
  const count = (first[name]!.data_offsets[1] - first[name]!.data_offsets[0]) / 4;
  for (let start = 0; start < count; start += CHUNK) {
    const n = Math.min(CHUNK, count - start);
    const values = buffers.map((buffer, k) => {
      const { entries, dataStart } = headers[k]!;
      readSync(files[k]!, buffer, 0, n * 4, dataStart + entries[name]!.data_offsets[0] + start * 4);
      return new Float32Array(buffer.buffer, buffer.byteOffset, n);
    });
    const mean = new Float32Array(outBuffer.buffer, outBuffer.byteOffset, n);
    const arrays = values.map((v) => ({ address: v.byteOffset, dtype: 'F32' as const }));
    kernel.combine(arrays, inputs.length, { address: mean.byteOffset, dtype: 'F32' }, n - (n % 2));
    if (n % 2 === 1) mean[n - 1] = values.reduce((sum, v) => sum + v[n - 1]!, 0) / inputs.length;
    writeSync(output, outBuffer, 0, n * 4);
  }
}
closeSync(output);
