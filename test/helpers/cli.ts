import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tempDir } from './files.js';

/** The hash cache of the soups that tests run, away from the user's own ~/.cache. */
export const TEST_CACHE_HOME = await tempDir('soup-cache-');

export const SOUP_BIN = fileURLToPath(new URL('../../../bin/soup.js', import.meta.url));

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built `soup` binary as a user would, with colour off unless the test says otherwise. */
export function runSoup(args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOUP_BIN, ...args], {
      cwd: options.cwd,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, XDG_CACHE_HOME: TEST_CACHE_HOME, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

export interface CappedResult extends RunResult {
  /** Peak resident memory of the soup process (VmHWM), in MiB, as last sampled. */
  peakMiB: number;
  /** Killed for going over the memory cap or the time limit. */
  killed: 'memory' | 'time' | undefined;
}

/**
 * Runs `soup` under a memory cap and a time limit, for hostile inputs (bombs, FIFOs): the process is
 * killed as soon as its peak resident memory passes `capMiB` or it runs longer than `timeoutMs`, so a
 * regression fails the test instead of exhausting the machine or hanging the suite.
 */
export function runSoupCapped(
  args: string[],
  options: { capMiB: number; timeoutMs: number; env?: NodeJS.ProcessEnv; signalAfterMs?: { signal: NodeJS.Signals; ms: number } },
): Promise<CappedResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SOUP_BIN, ...args], {
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: undefined, XDG_CACHE_HOME: TEST_CACHE_HOME, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let peakMiB = 0;
    let killed: CappedResult['killed'];
    const sample = (): void => {
      try {
        const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
        const kb = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
        peakMiB = Math.max(peakMiB, kb / 1024);
      } catch {
        return;
      }
      if (peakMiB > options.capMiB && killed === undefined) {
        killed = 'memory';
        child.kill('SIGKILL');
      }
    };
    const poll = setInterval(sample, 20);
    const timer = setTimeout(() => {
      killed ??= 'time';
      child.kill('SIGKILL');
    }, options.timeoutMs);
    const signalTimer = options.signalAfterMs === undefined ? undefined : setTimeout(() => child.kill(options.signalAfterMs!.signal), options.signalAfterMs.ms);
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', () => sample());
    child.on('close', (code) => {
      clearInterval(poll);
      clearTimeout(timer);
      if (signalTimer !== undefined) clearTimeout(signalTimer);
      resolve({ code, stdout, stderr, peakMiB: Math.round(peakMiB), killed });
    });
  });
}
