/**
 * `npm run bench`: speed and memory of soup next to baselines measured side by side in one run
 * (runs alternate, several each; medians and ratios). Prints one table and writes bench/results.json.
 *
 *   SOUP_BENCH_RUNS=9 npm run bench     # more runs per command (default 7)
 *   SOUP_BENCH_LLM_LAYERS=4 npm run bench    # the half-precision case shrunk: 4 x 0.42 GB per dtype
 *   SOUP_BENCH_ONLY=llm npm run bench   # one section: uniform, kernel, llm, greedy, onnx, search or startup
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
import { LLAMA_FULL_LAYERS, makeCheckpoints, makeLlamaCheckpoints } from './make-checkpoints.js';
import { benchKernel } from './kernel.js';
import { benchOnnx } from './onnx-throughput.js';
import { benchSearch } from './search.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SOUP = path.join(ROOT, 'bin', 'soup.js');
const MEASURE = path.join(ROOT, 'bench', 'measure.py');
const NUMPY_SCRIPT = path.join(ROOT, 'bench', 'numpy_uniform.py');
const NUMPY_HALF_SCRIPT = path.join(ROOT, 'bench', 'numpy_half.py');
const NODE_SCRIPT = fileURLToPath(new URL('./node-uniform.js', import.meta.url));
const RUNS = Number(process.env.SOUP_BENCH_RUNS ?? 7);
/**
 * Decoder layers of the Llama-shaped half-precision case. The default, 20, is the full size:
 * 1.3 GB ingredients, 5.3 GB per dtype, about 12 GB of disk with outputs (generated in about 10 s
 * per dtype here). 4 makes 0.42 GB ingredients for a smaller disk.
 */
const LLM_LAYERS = Number(process.env.SOUP_BENCH_LLM_LAYERS ?? LLAMA_FULL_LAYERS);
/** Runs per command of the half-precision case, whose commands take seconds each. */
const LLM_RUNS = Number(process.env.SOUP_BENCH_LLM_RUNS ?? 3);
const ONLY = process.env.SOUP_BENCH_ONLY;
const CA_CERTS = process.env.NODE_EXTRA_CA_CERTS;
const UNSET_CA = 'NODE_EXTRA_CA_CERTS unset';

function withoutCaCerts(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { NODE_EXTRA_CA_CERTS: _unused, ...rest } = env;
  return rest;
}

interface Measurement {
  seconds: number;
  cpuSeconds: number;
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
    process.stderr.write("bench: installing Debian's python3-numpy for the baseline...\n");
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
  // No target: `cat` only reads, so it is no floor for a job that also writes (the half-precision
  // case's floor adds `cp` of the output); soup <= numpy is this case's target.
  rows.push({ name: '  soup / cat (reading only)', value: (soupSeconds / catSeconds).toFixed(2) });
  if ('python' in numpy) {
    const numpySeconds = median(times.numpy!);
    rows.push({
      name: '  numpy memmap baseline',
      value: `${numpySeconds.toFixed(3)} s (${gbps(numpySeconds)}), peak RSS ${(median(rss.numpy!) / 1e6).toFixed(0)} MB`,
    });
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
  rows.push({
    name: '  peak RSS, 8 ingredients',
    value: `${(peak8 / 1e6).toFixed(0)} MB`,
    target: `< output ${(outputBytes / 1e6).toFixed(0)} MB + 100 MB`,
    holds: peak8 < limit,
  });
  rows.push({
    name: '  peak RSS, 2 ingredients',
    value: `${(peak2 / 1e6).toFixed(0)} MB`,
    target: `< output ${(outputBytes / 1e6).toFixed(0)} MB + 100 MB`,
    holds: peak2 < limit,
  });
  results.uniform = {
    inputBytes,
    outputBytes,
    runs: RUNS,
    seconds: times,
    coldSeconds: cold.seconds,
    peakRssBytes: rss,
    numpy: 'python' in numpy ? numpy.python : numpy.missing,
  };
}

/** Total size of the files in these folders (not recursive). */
async function folderBytes(folders: string[]): Promise<number> {
  let total = 0;
  for (const folder of folders) for (const file of await readdir(folder)) total += (await stat(path.join(folder, file))).size;
  return total;
}

/**
 * The case at the scale of today's models: 4 Llama-shaped ingredients in bf16 (and an f16
 * twin), sharded as Hugging Face writes them. The floor is what the machine needs for the same job:
 * `cat` of every input, plus `cp` of an output-sized folder into a fresh one (fresh pages are the
 * slow part of writing on these VMs).
 */
async function benchHalf(work: string, rows: Row[], results: Record<string, unknown>, dtype: 'BF16' | 'F16'): Promise<void> {
  const label = dtype.toLowerCase();
  process.stderr.write(`bench: writing 4 Llama-shaped ${label} ingredients with ${LLM_LAYERS} layers...\n`);
  const folder = path.join(work, `llm-${label}`);
  const inputs = await makeLlamaCheckpoints(folder, 4, LLM_LAYERS, dtype);
  const inputFiles = (await Promise.all(inputs.map(async (dir) => (await readdir(dir)).map((f) => path.join(dir, f))))).flat();
  const inputBytes = await folderBytes(inputs);
  const out = path.join(work, `soup-${label}`);
  const cache = path.join(work, 'cache');
  const soupEnv = withoutCaCerts({ ...process.env, XDG_CACHE_HOME: cache });
  const soup = [process.execPath, SOUP, 'uniform', ...inputs, '-o', out, '--force', '--quiet'];
  const numpy = findNumpy();
  const numpyOut = path.join(work, `numpy-${label}`);
  const copy = path.join(work, `copy-${label}`);
  // The first run hashes every ingredient and writes the output that later runs replace.
  const cold = measure(soup, soupEnv);
  const times: Record<string, number[]> = { soup: [], fresh: [], cat: [], cp: [], numpy: [] };
  const cpu: Record<string, number[]> = { soup: [], fresh: [], cat: [], cp: [], numpy: [] };
  const rss: Record<string, number[]> = { soup: [], numpy: [] };
  const record = (name: string, m: Measurement): Measurement => {
    times[name]!.push(m.seconds);
    cpu[name]!.push(m.cpuSeconds);
    return m;
  };
  for (let run = 0; run < LLM_RUNS; run++) {
    record('cat', measure(['cat', ...inputFiles]));
    await rm(copy, { recursive: true, force: true });
    record('cp', measure(['cp', '-r', out, copy]));
    // Every writer measured here (cp, soup replacing its output, soup writing a fresh one) starts
    // right after an output-sized file was removed: on these VMs pages just freed are written 3-5x
    // faster than others, and a replacing run cannot free its old output before it is done.
    await rm(copy, { recursive: true, force: true });
    rss.soup!.push(record('soup', measure(soup, soupEnv)).peakRssBytes);
    await rm(out, { recursive: true, force: true });
    record('fresh', measure(soup, soupEnv));
    if ('python' in numpy) {
      await rm(numpyOut, { recursive: true, force: true });
      rss.numpy!.push(record('numpy', measure([numpy.python, NUMPY_HALF_SCRIPT, numpyOut, ...inputs])).peakRssBytes);
    }
  }
  const outputBytes = await folderBytes([out]);
  const soupSeconds = median(times.soup!);
  const freshSeconds = median(times.fresh!);
  const floor = median(times.cat!) + median(times.cp!);
  const cpuFloor = median(cpu.cat!) + median(cpu.cp!);
  const cpuOf = (name: string): string => `${median(cpu[name]!).toFixed(2)} s CPU`;
  const gbps = (seconds: number) => `${(inputBytes / seconds / 1e9).toFixed(2)} GB/s`;
  const name = `uniform soup, 4 x ${(inputBytes / 4 / 1e9).toFixed(2)} GB ${label}, 2 shards (${LLM_LAYERS} layers)`;
  rows.push({ name, value: `${soupSeconds.toFixed(3)} s (${gbps(soupSeconds)}), ${cpuOf('soup')}; ${UNSET_CA}, replacing the last output` });
  rows.push({ name: '  first run (hashes every ingredient)', value: `${cold.seconds.toFixed(3)} s` });
  rows.push({ name: '  fresh output', value: `${freshSeconds.toFixed(3)} s (${gbps(freshSeconds)}), ${cpuOf('fresh')}` });
  rows.push({ name: '  replacing / fresh', value: (soupSeconds / freshSeconds).toFixed(2), target: '<= 1.2', holds: soupSeconds / freshSeconds <= 1.2 });
  rows.push({
    name: '  floor: cat of the inputs + cp of the output',
    value: `${floor.toFixed(3)} s (cat ${median(times.cat!).toFixed(3)} s + cp ${median(times.cp!).toFixed(3)} s), ${cpuFloor.toFixed(2)} s CPU`,
  });
  rows.push({ name: '  soup / floor', value: (soupSeconds / floor).toFixed(2), target: '<= 1.5', holds: soupSeconds / floor <= 1.5 });
  rows.push({ name: '  soup / floor, CPU time', value: (median(cpu.soup!) / cpuFloor).toFixed(2) });
  if ('python' in numpy) {
    const numpySeconds = median(times.numpy!);
    rows.push({
      name: '  numpy memmap baseline (float32 sums)',
      value: `${numpySeconds.toFixed(3)} s, ${cpuOf('numpy')}, peak RSS ${(median(rss.numpy!) / 1e6).toFixed(0)} MB`,
    });
    rows.push({ name: '  soup / numpy', value: (soupSeconds / numpySeconds).toFixed(2), target: '<= 0.5', holds: soupSeconds / numpySeconds <= 0.5 });
    rows.push({ name: '  soup / numpy, CPU time', value: (median(cpu.soup!) / median(cpu.numpy!)).toFixed(2) });
  }
  const peak = median(rss.soup!);
  rows.push({ name: '  peak RSS', value: `${(peak / 1e6).toFixed(0)} MB`, target: '< 200 MB', holds: peak < 200e6 });
  results[`llm-${label}`] = {
    layers: LLM_LAYERS,
    inputBytes,
    outputBytes,
    runs: LLM_RUNS,
    seconds: times,
    cpuSeconds: cpu,
    coldSeconds: cold.seconds,
    peakRssBytes: rss,
  };
  await rm(folder, { recursive: true, force: true });
  await Promise.all([out, numpyOut, copy].map((dir) => rm(dir, { recursive: true, force: true })));
}

/**
 * Scoring backends, each scoring the same fixtures model in a greedy soup. ONNX Runtime goes here
 * once its evaluator lands: an entry with the flags that select it (and its exported model, if the
 * fixtures keep it apart), so its samples/s print beside TF.js's.
 */
/** The same MLP and data through each scoring backend: the TF.js fixtures and their ONNX twins. */
const SCORING_BACKENDS: { name: string; ingredients: string; args: string[] }[] = [
  { name: 'TF.js wasm', ingredients: 'ingredients', args: ['--backend', 'wasm'] },
  { name: 'ONNX Runtime', ingredients: 'onnx', args: [] },
];

function benchGreedy(work: string, rows: Row[], results: Record<string, unknown>): void {
  const scoring: Record<string, unknown> = {};
  for (const backend of SCORING_BACKENDS) {
    const out = path.join(work, backend.ingredients === 'onnx' ? 'greedy.onnx' : 'greedy');
    const args = [
      SOUP,
      'greedy',
      path.join(ROOT, 'fixtures', backend.ingredients),
      '--val',
      path.join(ROOT, 'fixtures', 'data', 'val'),
      '-o',
      out,
      '--force',
      '--json',
      ...backend.args,
    ];
    const runs: { seconds: number; doc: Record<string, unknown> }[] = [];
    for (let run = 0; run < RUNS; run++) {
      const started = performance.now();
      const result = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, XDG_CACHE_HOME: path.join(work, 'cache') } });
      if (result.status !== 0) throw new Error(`soup greedy (${backend.name}) failed: ${result.stderr}`);
      runs.push({ seconds: (performance.now() - started) / 1000, doc: JSON.parse(result.stdout) as Record<string, unknown> });
    }
    const seconds = median(runs.map((r) => r.seconds));
    const doc = runs[0]!.doc;
    const scored = Number(doc.samplesScored);
    rows.push({ name: `greedy soup on the fixtures, ${backend.name}`, value: `${seconds.toFixed(3)} s, backend ${String(doc.backend)}` });
    rows.push({ name: '  evaluations', value: `${String(doc.evaluations)} (${scored} samples scored, ${String(doc.samplesSaved)} saved by early stopping)` });
    rows.push({ name: '  scoring samples/s (whole command)', value: `${(scored / seconds).toFixed(0)}` });
    scoring[backend.name] = {
      seconds: runs.map((r) => r.seconds),
      backend: doc.backend,
      evaluations: doc.evaluations,
      samplesScored: scored,
      samplesSaved: doc.samplesSaved,
    };
  }
  results.greedy = scoring;
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
    const runs = (section: string): boolean => ONLY === undefined || ONLY === section;
    if (runs('uniform')) await benchUniform(work, rows, results);
    if (runs('kernel')) benchKernel(RUNS, rows, results);
    if (runs('llm')) {
      if (LLM_LAYERS !== LLAMA_FULL_LAYERS)
        process.stderr.write(
          `bench: half-precision case shrunk to ${LLM_LAYERS} of ${LLAMA_FULL_LAYERS} layers (SOUP_BENCH_LLM_LAYERS=${LLAMA_FULL_LAYERS} for 4 x 1.3 GB)\n`,
        );
      await benchHalf(work, rows, results, 'BF16');
      await benchHalf(work, rows, results, 'F16');
    }
    if (runs('greedy')) benchGreedy(work, rows, results);
    if (runs('onnx')) await benchOnnx(ROOT, RUNS, rows, results);
    if (runs('search')) await benchSearch(ROOT, work, rows, results);
    if (runs('startup')) benchStartup(rows, results);
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
