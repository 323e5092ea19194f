/**
 * Worker thread entry: adds up its half of each chunk while the main thread adds the other half.
 * Inputs and outputs live in SharedArrayBuffers, so nothing is copied between the threads.
 */
import { parentPort } from 'node:worker_threads';
import { BLOCK, ChunkOutput, combineRange } from './average.js';
import type { HalfChunk } from './parallel.js';

const sums = new Float64Array(BLOCK);

parentPort!.on('message', (task: HalfChunk) => {
  const inputs = task.inputs.map(({ buffer, f64, length }) => (f64 ? new Float64Array(buffer, 0, length) : new Float32Array(buffer, 0, length)));
  const out = new ChunkOutput(task.out, task.dtype);
  parentPort!.postMessage(combineRange(inputs, task.weights, task.divisor, out, task.from, task.to, sums));
});
