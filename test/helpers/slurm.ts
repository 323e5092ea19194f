import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const scripts = fileURLToPath(new URL('../../../scripts/', import.meta.url));

/**
 * Starts the single-node Slurm cluster of scripts/slurm-up.sh (as root). A machine where the daemons
 * cannot start fails the tests that need them, saying why: they are never skipped.
 */
export async function startSlurm(): Promise<void> {
  try {
    await exec('bash', [`${scripts}slurm-up.sh`], { timeout: 60_000 });
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(`the Slurm daemons could not start on this machine, so --executor slurm cannot be tested: ${(stderr ?? '').trim() || message}`);
  }
}

export async function stopSlurm(): Promise<void> {
  await exec('bash', [`${scripts}slurm-down.sh`], { timeout: 60_000 });
}

/** Ids of the jobs Slurm still has queued, running or ending (squeue's default view also lists NODE_FAIL jobs for a while). */
export async function squeue(): Promise<string[]> {
  const { stdout } = await exec('squeue', ['-h', '--states=PENDING,CONFIGURING,RUNNING,COMPLETING,SUSPENDED,REQUEUED', '-o', '%i']);
  return stdout
    .split('\n')
    .map((line) => line.trim())
    .filter(Boolean);
}

export async function slurm(command: string, ...args: string[]): Promise<string> {
  return (await exec(command, args)).stdout;
}
