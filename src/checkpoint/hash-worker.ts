/**
 * Worker thread entry: hashes files with SHA-256 off the main thread, so that a soup is averaged on
 * one core while its ingredients are hashed on another.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { sha256File } from './hash.js';

for (const file of workerData as string[]) {
  try {
    parentPort!.postMessage({ file, sha256: await sha256File(file) });
  } catch (error) {
    parentPort!.postMessage({ file, error: (error as Error).message });
  }
}
