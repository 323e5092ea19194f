import type { Writable } from 'node:stream';
import { CommanderError } from 'commander';
import { ExitCode, GateError, InterruptedError, SoupError } from '../errors.js';
import { oneLine } from '../one-line.js';
import { buildProgram } from './program.js';

/**
 * The entry point: builds the command line, runs one command, and is the only place that decides
 * the exit code. Command modules are imported only when their command runs, so `--help` stays fast.
 */

const interrupt = new AbortController();

function report(error: unknown, debug: boolean): ExitCode {
  if (error instanceof CommanderError) {
    // Help and --version "fail" with exit code 0; every other parse error is bad usage.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
  }
  if (error instanceof SoupError) {
    const hint = error.hint === undefined ? '' : ` (${oneLine(error.hint)})`;
    const label = error instanceof GateError && error.verdict ? '' : 'error: ';
    process.stderr.write(`soup: ${label}${oneLine(error.message)}${hint}\n`);
    if (debug && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`soup: internal error: ${oneLine(message)}\n`);
  process.stderr.write(
    debug && error instanceof Error && error.stack !== undefined
      ? `${error.stack}\n`
      : 'This is a bug in soup. Please report it with the command you ran and the output of the same command with --debug.\n',
  );
  return ExitCode.internal;
}

/** How long soup may take to clean up after SIGINT or SIGTERM before it exits regardless. */
const SIGNAL_GRACE_MS = 10_000;

/**
 * With --json, stdout holds one JSON document even when the command fails before printing its own:
 * `{"error": {"message", "hint"?, "exitCode"}}` (stderr says the same in words). A command that has
 * printed its document (compare's or diff's before a gate fails) gets nothing more.
 */
function watchStdout(): { written: () => boolean } {
  let written = false;
  const write = process.stdout.write.bind(process.stdout) as (...args: unknown[]) => boolean;
  process.stdout.write = ((...args: unknown[]) => {
    written ||= args[0] !== '' && !(args[0] instanceof Uint8Array && args[0].byteLength === 0);
    return write(...args);
  }) as typeof process.stdout.write;
  return { written: () => written };
}

function errorDocument(error: unknown, code: ExitCode): string {
  const message = error instanceof CommanderError ? error.message.replace(/^error: /, '') : error instanceof Error ? error.message : String(error);
  const hint = error instanceof SoupError ? error.hint : undefined;
  return `${JSON.stringify({ error: { message, ...(hint === undefined ? {} : { hint }), exitCode: code } }, null, 2)}\n`;
}

async function main(argv: string[]): Promise<ExitCode> {
  const debug = argv.includes('--debug');
  const dashes = argv.indexOf('--');
  const json = (dashes === -1 ? argv : argv.slice(0, dashes)).includes('--json');
  const stdout = watchStdout();
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    // A second Ctrl-C means "now": the first one is still cleaning up.
    if (signals > 1) process.exit(ExitCode.interrupted);
    interrupt.abort(new InterruptedError(signal));
    // Work that cannot see the abort (a read blocked in the thread pool) must not keep soup alive:
    // SIGTERM from a CI runner or `timeout` means stop, after a grace period for cleanup.
    setTimeout(() => process.exit(ExitCode.interrupted), SIGNAL_GRACE_MS).unref();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await buildProgram(interrupt.signal).parseAsync(argv);
    return interrupt.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  } catch (error) {
    const code = report(error, debug);
    if (json && code !== ExitCode.ok && !stdout.written()) process.stdout.write(errorDocument(error, code));
    return code;
  }
}

/**
 * Waits until everything written to `stream` has reached the OS. A pipe whose reader is not draining
 * takes 64 KiB and then makes Node queue the rest; process.exit() drops that queue, which cut
 * `--json` documents at 65,536 bytes. A reader that went away (EPIPE) ends the wait too.
 */
function drain(stream: Writable): Promise<void> {
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

// A reader that went away (`soup inspect --json | head`) is the reader's choice, not an error of soup's:
// the rest of the output is dropped and the exit code stays the command's.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
  });
}
const code = await main(process.argv);
// The only exit: first let stdout and stderr reach their readers (a slow `| jq` included).
await Promise.all([drain(process.stdout), drain(process.stderr)]);
process.exit(code);
