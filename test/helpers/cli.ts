import { spawn } from 'node:child_process';
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
