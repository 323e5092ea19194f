import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

/**
 * Runs the user's command in the background of a small sh that owns a process group, with a guard
 * that reads fd 3, a pipe whose other end only soup holds: when soup is gone (even by kill -9), the
 * read ends and the guard kills the whole group, so no evaluation outlives soup. The command's exit
 * status, or the signal that killed it, is passed on as the command's own.
 */
const GUARDED = `/bin/sh -c "$1" 3<&- &
job=$!
( read _ <&3 || :; kill -9 0 ) >/dev/null 2>&1 &
guard=$!
exec 3<&-
wait $job
status=$?
kill $guard 2>/dev/null
if [ $status -gt 128 ]; then kill -$((status - 128)) $$; fi
exit $status`;

/** Process groups of the commands running now: killed if soup exits first. */
const running = new Set<number>();
let hooked = false;

function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // The group is gone already.
  }
}

/** Spawns `command` with sh in its own process group, which dies with soup. Kill it with killGroup. */
export function spawnInOwnGroup(command: string): ChildProcessByStdio<null, Readable, Readable> {
  if (!hooked) {
    hooked = true;
    process.on('exit', () => {
      for (const pid of running) killGroup(pid);
    });
  }
  const child = spawn('/bin/sh', ['-c', GUARDED, 'soup-eval', command], { stdio: ['ignore', 'pipe', 'pipe', 'pipe'], detached: true });
  const pid = child.pid;
  if (pid !== undefined) {
    running.add(pid);
    child.on('close', () => running.delete(pid));
  }
  return child as unknown as ChildProcessByStdio<null, Readable, Readable>;
}

/** Kills a command spawned by spawnInOwnGroup, and every process it started. */
export function killCommand(child: { pid?: number | undefined; kill(signal: NodeJS.Signals): boolean }): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}
