import type { Writable } from 'node:stream';

/**
 * Waits until everything written to `stream` has reached the OS. A pipe whose reader is not draining
 * takes 64 KiB and then makes Node queue the rest; process.exit() drops that queue, which cut
 * `--json` documents at 65,536 bytes. A reader that went away (EPIPE) ends the wait too.
 */
export function drain(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.writableEnded) return resolve();
    const done = (): void => {
      stream.off('error', done);
      resolve();
    };
    stream.once('error', done);
    // Writes complete in order: the callback of an empty write runs once the earlier ones are out.
    stream.write('', done);
  });
}
