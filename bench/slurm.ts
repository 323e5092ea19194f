/**
 * `node dist/bench/slurm.js` (as root; it starts the single-node cluster of scripts/slurm-up.sh and
 * stops it at the end): what --executor slurm costs and what greedy's look-ahead buys.
 *
 * 1. Overhead per evaluation through Slurm over the same command run locally: a greedy soup of 8
 *    one-float ingredients at --jobs 1 (15 evaluations, one at a time) with an instant command; the
 *    difference of wall times over 15 is submission + scheduling + polling + reading back.
 * 2. Wall time of a greedy soup of 8 ingredients with a 2-second evaluation command at --jobs 1, 2, 4,
 *    local and through Slurm, against the critical path: all 8 ingredients at once (2 s), then the 7
 *    sequential steps (14 s): 16 s. One job at a time takes 15 x 2 = 30 s.
 *
 * One run per configuration (each takes tens of seconds); prints a table and writes bench/slurm-results.json.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOUP = path.join(ROOT, 'bin', 'soup.js');
const VALUES = [0.3, 0.45, 0.62, 0.7, 0.41, 0.55, 0.8, 0.2];
const EVAL_SECONDS = 2;

/** A one-float safetensors file. */
function oneFloat(value: number): Buffer {
  let header = JSON.stringify({ w: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } });
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const out = Buffer.alloc(8 + header.length + 4);
  out.writeBigUInt64LE(BigInt(header.length));
  out.write(header, 8);
  out.writeFloatLE(value, 8 + header.length);
  return out;
}

/** Scores a one-float candidate as 1 - |w - 0.5| in plain sh (no interpreter start-up in the measurement). */
const SCORER = `h=$(od -An -tu8 -N8 "$1" | tr -d ' '); w=$(od -An -tf4 -j $((8 + h)) -N4 "$1" | tr -d ' '); awk -v w="$w" 'BEGIN { d = w - 0.5; if (d < 0) d = -d; print 1 - d }'`;

interface Run {
  executor: string;
  jobs: number;
  evalSeconds: number;
  seconds: number;
  evaluations: number;
  evaluationsWasted: number;
  slurmJobs: number;
  chosen: string[];
}

function greedy(cwd: string, executor: 'local' | 'slurm', jobs: number, evalSeconds: number): Run {
  const command = `${evalSeconds > 0 ? `sleep ${evalSeconds}; ` : ''}sh ./score.sh {ckpt}`;
  const started = performance.now();
  const result = spawnSync(
    process.execPath,
    [
      SOUP,
      'greedy',
      'runs',
      '--eval-cmd',
      command,
      '-o',
      'soup.safetensors',
      '--force',
      '--json',
      '--jobs',
      String(jobs),
      '--executor',
      executor,
      '--work-dir',
      'work',
    ],
    {
      cwd,
      encoding: 'utf8',
    },
  );
  const seconds = (performance.now() - started) / 1000;
  if (result.status !== 0) throw new Error(`soup greedy (${executor}, --jobs ${jobs}) failed: ${result.stderr}`);
  const doc = JSON.parse(result.stdout) as { evaluations: number; evaluationsWasted?: number; slurmJobs?: unknown[]; chosen: string[] };
  return {
    executor,
    jobs,
    evalSeconds,
    seconds,
    evaluations: doc.evaluations,
    evaluationsWasted: doc.evaluationsWasted ?? 0,
    slurmJobs: doc.slurmJobs?.length ?? 0,
    chosen: doc.chosen,
  };
}

async function main(): Promise<void> {
  execFileSync('bash', [path.join(ROOT, 'scripts', 'slurm-up.sh')], { stdio: 'inherit' });
  const cwd = await mkdtemp(path.join(tmpdir(), 'soup-bench-slurm-'));
  try {
    await mkdir(path.join(cwd, 'runs'));
    await mkdir(path.join(cwd, 'work'));
    for (const [k, value] of VALUES.entries()) await writeFile(path.join(cwd, 'runs', `run-${k + 1}.safetensors`), oneFloat(value));
    await writeFile(path.join(cwd, 'score.sh'), `${SCORER}\n`);

    const overhead = { local: greedy(cwd, 'local', 1, 0), slurm: greedy(cwd, 'slurm', 1, 0) };
    const perEvaluation = (overhead.slurm.seconds - overhead.local.seconds) / overhead.local.evaluations;
    const runs: Run[] = [];
    for (const jobs of [1, 2, 4]) for (const executor of ['local', 'slurm'] as const) runs.push(greedy(cwd, executor, jobs, EVAL_SECONDS));
    const criticalPath = EVAL_SECONDS * VALUES.length;
    const serial = EVAL_SECONDS * (2 * VALUES.length - 1);

    console.log(
      `Overhead per evaluation through Slurm: ${perEvaluation.toFixed(2)} s (greedy of ${VALUES.length}, --jobs 1, instant command: local ${overhead.local.seconds.toFixed(1)} s, Slurm ${overhead.slurm.seconds.toFixed(1)} s, ${overhead.local.evaluations} evaluations)`,
    );
    console.log(`Greedy of ${VALUES.length} ingredients, ${EVAL_SECONDS} s per evaluation; critical path ${criticalPath} s, one at a time ${serial} s`);
    console.log('executor  jobs  wall (s)  / critical path  speed-up vs one at a time  evaluations  ahead, unused  Slurm jobs');
    for (const run of runs) {
      const base = runs.find((other) => other.executor === run.executor && other.jobs === 1)!;
      console.log(
        `${run.executor.padEnd(8)}  ${String(run.jobs).padStart(4)}  ${run.seconds.toFixed(1).padStart(8)}  ${(run.seconds / criticalPath).toFixed(2).padStart(15)}  ${(base.seconds / run.seconds).toFixed(2).padStart(25)}  ${String(run.evaluations).padStart(11)}  ${String(run.evaluationsWasted).padStart(13)}  ${String(run.slurmJobs).padStart(10)}`,
      );
    }
    const decisions = new Set(runs.map((run) => run.chosen.join(',')));
    if (decisions.size !== 1) throw new Error(`the runs chose different soups: ${[...decisions].join(' | ')}`);
    await writeFile(path.join(ROOT, 'bench', 'slurm-results.json'), `${JSON.stringify({ perEvaluation, overhead, criticalPath, serial, runs }, null, 2)}\n`);
  } finally {
    await rm(cwd, { recursive: true, force: true });
    execFileSync('bash', [path.join(ROOT, 'scripts', 'slurm-down.sh')], { stdio: 'inherit' });
  }
}

await main();
