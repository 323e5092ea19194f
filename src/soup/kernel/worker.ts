/** The averaging kernel's helper thread: see helper.ts. */
import { workerData } from 'node:worker_threads';
import { serveHelper, type KernelExports } from './helper.js';

declare const WebAssembly: { Instance: new (module: unknown, imports: object) => { exports: unknown } };

const { module, memory, address } = workerData as { module: unknown; memory: { buffer: ArrayBufferLike }; address: number };
const kernel = new WebAssembly.Instance(module, { env: { memory } }).exports as KernelExports;
serveHelper(kernel, memory.buffer, address);
