import { Worker } from 'node:worker_threads';
import type { FloatDType } from '../checkpoint/dtype.js';
import type { ChunkOutput } from './average.js';

/** One half of a chunk for the helper thread: where its inputs and output live, and what to compute. */
export interface HalfChunk {
  inputs: { buffer: SharedArrayBuffer; f64: boolean; length: number }[];
  weights: number[] | undefined;
  divisor: number;
  out: SharedArrayBuffer;
  dtype: FloatDType;
  from: number;
  to: number;
}

/**
 * A second thread for the averaging kernel: the main thread reads and adds one half of each chunk,
 * this one adds the other half, both straight in shared memory.
 */
export class KernelHelper {
  private readonly worker: Worker;
  private waiting: { resolve: (finite: boolean) => void; reject: (error: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor() {
    this.worker = new Worker(new URL('./mix-worker.js', import.meta.url));
    // The helper must never keep a finished process alive.
    this.worker.unref();
    this.worker.on('message', (finite: boolean) => {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting?.resolve(finite);
    });
    this.worker.on('error', (error) => {
      this.failure = error;
      this.waiting?.reject(error);
      this.waiting = undefined;
    });
  }

  /** Starts the other half; the returned promise says whether its means were all finite. */
  combine(
    inputs: readonly (Float32Array | Float64Array)[],
    weights: readonly number[] | undefined,
    divisor: number,
    out: ChunkOutput,
    from: number,
    to: number,
  ): Promise<boolean> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const task: HalfChunk = {
      inputs: inputs.map((values) => ({ buffer: values.buffer as SharedArrayBuffer, f64: values instanceof Float64Array, length: values.length })),
      weights: weights === undefined ? undefined : [...weights],
      divisor,
      out: out.bytes.buffer as SharedArrayBuffer,
      dtype: out.dtype,
      from,
      to,
    };
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      this.worker.postMessage(task);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
