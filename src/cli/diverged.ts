import type { Checkpoint } from '../checkpoint/types.js';
import type { Terminal } from '../report/terminal.js';
import { scanDiverged as scanFor, type Divergence } from '../soup/diverged.js';

/**
 * The ingredients whose weights hold NaN or infinities, each announced once as a warning. With
 * --allow-nonfinite nothing is looked for: the user keeps them in, as before.
 */
export async function scanDiverged(
  checkpoints: readonly Checkpoint[],
  options: { allowNonfinite?: boolean | undefined; leftOutOf?: string },
  terminal: Terminal,
  signal?: AbortSignal,
): Promise<Map<Checkpoint, Divergence>> {
  return scanFor(checkpoints, options, (message) => terminal.warn(message), signal);
}
