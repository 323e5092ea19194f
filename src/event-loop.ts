import { setImmediate } from 'node:timers/promises';

/** Longest stretch of synchronous I/O before the event loop gets a turn. */
const MAX_BUSY_MS = 10;

let lastTurn = performance.now();

/**
 * Gives the event loop a turn if it has not had one for 10 ms. Checkpoint reads and writes are
 * synchronous (see RangeReader.readInto), so without this a Ctrl-C, a progress redraw or a worker's
 * message would wait until the whole soup, diff or evaluation was done. The I/O primitives call it,
 * so every loop over them stays interruptible; it costs a few µs per turn.
 */
export async function yieldIfDue(): Promise<void> {
  if (performance.now() - lastTurn < MAX_BUSY_MS) return;
  await setImmediate();
  lastTurn = performance.now();
}
