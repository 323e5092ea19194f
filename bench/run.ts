/**
 * `npm run bench`: speed and memory of soup next to baselines measured side by side in one run
 * (runs alternate, several each; medians and ratios). Prints one table and writes bench/results.json.
 *
 *   SOUP_BENCH_RUNS=9 npm run bench     # more runs per command (default 7)
 *
 * Where NODE_EXTRA_CA_CERTS is set (these machines set it), every Node process parses that CA bundle
 * as it starts, before any of soup's code runs: about 75 ms here, against 35 ms for the rest of
 * Node's start-up. Python does not, so the bench also times soup and `node -e 0` without it.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeCheckpoints } from './make-checkpoints.js';
import { benchOnnx } from './onnx-throughput.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOUP = path.join(ROOT, 'bin', 'soup.js');
const MEASURE = path.join(ROOT, 'bench', 'measure.py');
const NUMPY_SCRIPT = path.join(ROOT, 'bench', 'numpy_uniform.py');
const NODE_SCRIPT = fileURLToPath(new URL('./node-uniform.js', import.meta.url));
const RUNS = Number(process.env.SOUP_BENCH_RUNS ?? 7);
const CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
const UNSET_CA = 'NODE_EXTRA_CA_CERTS unset';

function withoutCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return rest;
}

interface Measurement {
  seconds: number;
  peakRssBytes: number;
  code: number;
  stderr: string;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Wall time and peak RSS of one command, measured by a Python wrapper (getrusage of its child). */
function measure(command: string[], env: NodeJS.ProcessEnv = process.env): Measurement {
  const result = spawnSync('python3', [MEASURE, ...command], { encoding: 'utf8', env });
  if (result.status !== 0) throw new Error(`cannot measure ${command.join(' ')}: ${result.stderr}`);
  const measurement = JSON.parse(result.stdout) as Measurement;
  if (measurement.code !== 0) throw new Error(`${command.join(' ')} failed: ${measurement.stderr}`);
  return measurement;
}

/** Debian's numpy for the baseline: present, installable with apt-get (as root), or a reason it is missing. */
function findNumpy(): { python: string } | { missing: string } {
  const has = (python: string) => spawnSync(python, ['-c', 'import numpy'], { stdio: 'ignore' }).status === 0;
  if (has('/usr/bin/python3')) return { python: '/usr/bin/python3' };
  if (process.getuid?.() === 0 && spawnSync('which', ['apt-get'], { stdio: 'ignore' }).status === 0) {
    process.stderr.write('bench: installing Debian\'s python3-numpy for the baseline...\n');
    spawnSync('apt-get', ['install', '-y', '-qq', 'python3-numpy'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (has('/usr/bin/python3')) return { python: '/usr/bin/python3' };
  }
  if (has('python3')) return { python: 'python3' };
  return { missing: 'numpy is not installed and could not be (apt-get install python3-numpy needs root and Debian)' };
}

interface Row {
  name: string;
  value: string;
  target?: string;
  holds?: boolean;
}

async function benchUniform(work: string, rows: Row[], results: Record<string, unknown>): Promise<void> {
  process.stderr.write('bench: writing 8 synthetic checkpoints of about 64 MB...\n');
  const eight = await makeCheckpoints(path.join(work, 'eight'), 8);
  const two = (await readdir(path.join(work, 'eight'))).slice(0, 2).map((f) => path.join(work, 'eight', f));
  const inputBytes = (await Promise.all(eight.map((f) => stat(f)))).reduce((sum, s) => sum + s.size, 0);
  const out = path.join(work, 'soup.safetensors');
  const cache = path.join(work, 'cache');
  const soupEnv = { ...process.env, XDG_CACHE_HOME: cache };
  const soup = (inputs: string[]) => [process.execPath, SOUP, 'uniform', ...inputs, '-o', out, '--force', '--quiet'];
  const numpy = findNumpy();

  // The first run hashes every ingredient (SHA-256 for the recipe); later runs find the hashes cached.
  await rm(cache, { recursive: true, force: true });
  const cold = measure(soup(eight), soupEnv);
  const times: Record<string, number[]> = { cat: [], soup: [], soupWithoutCaCerts: [], node: [], numpy: [] };
  const rss: Record<string, number[]> = { soup: [], soup2: [], numpy: [] };
  for (let run = 0; run < RUNS; run++) {
    times.cat!.push(measure(['cat', ...eight]).seconds);
    const s = measure(soup(eight), soupEnv);
    times.soup!.push(s.seconds);
    rss.soup!.push(s.peakRssBytes);
    if (CA_CERTS !== undefined) times.soupWithoutCaCerts!.push(measure(soup(eight), withoutCaCerts(soupEnv)).seconds);
    rss.soup2!.push(measure(soup(two), soupEnv).peakRssBytes);
    times.node!.push(measure([process.execPath, NODE_SCRIPT, path.join(work, 'node.safetensors'), ...eight]).seconds);
    if ('python' in numpy) {
      const n = measure([numpy.python, NUMPY_SCRIPT, path.join(work, 'numpy.safetensors'), ...eight]);
      times.numpy!.push(n.seconds);
      rss.numpy!.push(n.peakRssBytes);
    }
  }
  const outputBytes = (await stat(out)).size;
  const soupSeconds = median(times.soup!);
  const catSeconds = median(times.cat!);
  const gbps = (seconds: number) => `${(inputBytes / seconds / 1e9).toFixed(2)} GB/s`;
  rows.push({ name: `uniform soup, 8 x ${(inputBytes / 8 / 1e6).toFixed(0)} MB`, value: `${soupSeconds.toFixed(3)} s (${gbps(soupSeconds)})` });
  rows.push({ name: '  first run (hashes every ingredient)', value: `${cold.seconds.toFixed(3)} s (${gbps(cold.seconds)})` });
  rows.push({ name: '  cat of the same files', value: `${catSeconds.toFixed(3)} s (${gbps(catSeconds)})` });
  rows.push({ name: '  soup / cat', value: (soupSeconds / catSeconds).toFixed(2), target: '<= 2', holds: soupSeconds / catSeconds <= 2 });
  if ('python' in numpy) {
    const numpySeconds = median(times.numpy!);
    rows.push({ name: '  numpy memmap baseline', value: `${numpySeconds.toFixed(3)} s (${gbps(numpySeconds)}), peak RSS ${(median(rss.numpy!) / 1e6).toFixed(0)} MB` });
    rows.push({ name: '  soup / numpy', value: (soupSeconds / numpySeconds).toFixed(2), target: '<= 1.0', holds: soupSeconds / numpySeconds <= 1 });
    rows.push({ name: '  soup first run / numpy', value: (cold.seconds / numpySeconds).toFixed(2) });
    if (CA_CERTS !== undefined) {
      const clean = median(times.soupWithoutCaCerts!);
      rows.push({ name: `  soup, ${UNSET_CA}`, value: `${clean.toFixed(3)} s (${gbps(clean)})` });
      rows.push({ name: `  soup / numpy, ${UNSET_CA}`, value: (clean / numpySeconds).toFixed(2), target: '<= 1.0', holds: clean / numpySeconds <= 1 });
    }
  } else {
    rows.push({ name: '  numpy memmap baseline', value: `missing: ${numpy.missing}` });
  }
  const nodeSeconds = median(times.node!);
  rows.push({ name: '  node baseline (no checks, in place)', value: `${nodeSeconds.toFixed(3)} s (${gbps(nodeSeconds)})` });
  rows.push({ name: '  soup / node baseline', value: (soupSeconds / nodeSeconds).toFixed(2) });
  const limit = outputBytes + 100e6;
  const peak8 = median(rss.soup!);
  const peak2 = median(rss.soup2!);
  rows.push({ name: '  peak RSS, 8 ingredients', value: `${(peak8 / 1e6).toFixed(0)} MB`, target: `< output ${(outputBytes / 1e6).toFixed(0)} MB + 100 MB`, holds: peak8 < limit });
  rows.push({ name: '  peak RSS, 2 ingredients', value: `${(peak2 / 1e6).toFixed(0)} MB`, target: `< output ${(outputBytes / 1e6).toFixed(0)} MB + 100 MB`, holds: peak2 < limit });
  results.uniform = { inputBytes, outputBytes, runs: RUNS, seconds: times, coldSeconds: cold.seconds, peakRssBytes: rss, numpy: 'python' in numpy ? numpy.python : numpy.missing };
}

function benchGreedy(work: string, rows: Row[], results: Record<string, unknown>): void {
  const args = [SOUP, 'greedy', path.join(ROOT, 'fixtures', 'ingredients'), '--val', path.join(ROOT, 'fixtures', 'data', 'val'), '-o', path.join(work, 'greedy'), '--force', '--json'];
  const runs: { seconds: number; doc: Record<string, unknown> }[] = [];
  for (let run = 0; run < RUNS; run++) {
    const started = performance.now();
    const result = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: path.join(work, 'cache') } });
    if (result.status !== 0) throw new Error(`soup greedy failed: ${result.stderr}`);
    runs.push({ seconds: (performance.now() - started) / 1000, doc: JSON.parse(result.stdout) as Record<string, unknown> });
  }
  const seconds = median(runs.map((r) => r.seconds));
  const doc = runs[0]!.doc;
  const scored = Number(doc.samplesScored);
  rows.push({ name: 'greedy soup on the fixtures', value: `${seconds.toFixed(3)} s, backend ${String(doc.backend)}` });
  rows.push({ name: '  evaluations', value: `${String(doc.evaluations)} (${scored} samples scored, ${String(doc.samplesSaved)} saved by early stopping)` });
  rows.push({ name: '  samples/s (whole command)', value: `${(scored / seconds).toFixed(0)}` });
  results.greedy = { seconds: runs.map((r) => r.seconds), backend: doc.backend, evaluations: doc.evaluations, samplesScored: scored, samplesSaved: doc.samplesSaved };
}

function benchStartup(rows: Row[], results: Record<string, unknown>): void {
  const help: number[] = [];
  const bare: number[] = [];
  const clean: number[] = [];
  for (let run = 0; run < RUNS * 2; run++) {
    bare.push(measure([process.execPath, '-e', '0']).seconds);
    help.push(measure([process.execPath, SOUP, '--help']).seconds);
    if (CA_CERTS !== undefined) clean.push(measure([process.execPath, '-e', '0'], withoutCaCerts(process.env)).seconds);
  }
  const ms = (values: number[]): string => `${(median(values) * 1000).toFixed(0)} ms`;
  const ratio = median(help) / median(bare);
  rows.push({ name: 'soup --help', value: ms(help) });
  rows.push({ name: '  node -e 0', value: ms(bare) });
  if (CA_CERTS !== undefined) rows.push({ name: `  node -e 0, ${UNSET_CA}`, value: ms(clean) });
  rows.push({ name: '  soup --help / node -e 0', value: ratio.toFixed(2), target: '< 3', holds: ratio < 3 });
  results.startup = { helpSeconds: help, nodeSeconds: bare, nodeWithoutCaCertsSeconds: clean };
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'soup-bench-'));
  const rows: Row[] = [];
  const results: Record<string, unknown> = { date: new Date().toISOString(), node: process.version, runs: RUNS };
  try {
    await benchUniform(work, rows, results);
    benchGreedy(work, rows, results);
    await benchOnnx(ROOT, RUNS, rows, results);
    benchStartup(rows, results);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const width = Math.max(...rows.map((r) => r.name.length));
  const valueWidth = Math.max(...rows.map((r) => r.value.length));
  for (const row of rows) {
    const verdict = row.target === undefined ? '' : `  target ${row.target}: ${row.holds ? 'holds' : 'MISSED'}`;
    process.stdout.write(`${row.name.padEnd(width)}  ${row.value.padEnd(valueWidth)}${verdict}\n`);
  }
  results.table = rows;
  await writeFile(path.join(ROOT, 'bench', 'results.json'), `${JSON.stringify(results, null, 2)}\n`);
  process.stdout.write('\nwritten: bench/results.json\n');
}

await main();
