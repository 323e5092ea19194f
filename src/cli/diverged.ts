import type { Checkpoint } from '../checkpoint/types.js';
import type { Terminal } from '../report/terminal.js';
import { describeDivergence, findDiverged, type Divergence } from '../soup/diverged.js';

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
  if (options.allowNonfinite === true) return new Map();
  const found = await findDiverged(checkpoints, signal);
  const leftOut = options.leftOutOf === undefined ? '' : `, ranked last and left out of ${options.leftOutOf} (--allow-nonfinite keeps it in)`;
  for (const [checkpoint, divergence] of found) terminal.warn(`${checkpoint.name} diverged: ${describeDivergence(divergence)}; it is scored${leftOut}`);
  return found;
}
