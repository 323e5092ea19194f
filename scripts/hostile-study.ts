/**
 * The hostile-input study, rebuilt as a tool (not part of `npm test`): mutates the fixtures and adds
 * crafted hostile files (bombs, FIFOs, odd names), runs every reader through the built CLI under
 * `timeout` and `/usr/bin/time`, and tabulates what went wrong:
 *
 *   crash   exit status other than 0 and 2 (1 = internal error, 134 = abort, ...), or an exit 2
 *           whose message is not one line starting "soup: error:"
 *   hang    killed by the time limit
 *   >1 GB   peak resident memory above 1 GiB
 *   silent  exit 0 on a file that must be refused (a crafted refusal, or an .npz numpy rejects)
 *
 *   npm run build && node dist/scripts/hostile-study.js [--mutations N] [--seed S] [--out report.json]
 *
 * Sequential, one soup at a time: a few minutes on one core with the defaults.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync } from 'node:zlib';
import { zipSync } from 'fflate';
import { encodeModel } from '../src/checkpoint/onnx/build.js';
import { lenField } from '../src/checkpoint/onnx/protobuf.js';
import { encodeIdxU8 } from '../src/data/idx.js';
import { encodeNpy } from '../src/data/npy.js';
import { seededRandom } from '../src/random.js';
import { gzipOf, repeatedDeflate, zipOfDeflated, type Deflated } from '../test/helpers/bombs.js';
import { linearSpec } from '../test/helpers/onnx.js';
import { Pickle, f32Bytes, pushTensor, torchArchive } from '../test/helpers/torch.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const FIXTURES = path.join(ROOT, 'fixtures');
const SOUP = path.join(ROOT, 'bin', 'soup.js');
const TIME_LIMIT_S = 60;
const GIB_KB = 1024 * 1024;

type Expect = 'refuse' | 'accept' | 'any';

interface Case {
  group: string;
  name: string;
  args: string[];
  expect: Expect;
}

interface Outcome extends Case {
  code: number;
  peakKb: number;
  seconds: number;
  problem: 'crash' | 'hang' | 'memory' | 'silent' | undefined;
  stderr: string;
}

function option(name: string, fallback: string): string {
  const at = process.argv.indexOf(`--${name}`);
  return at >= 0 && process.argv[at + 1] !== undefined ? process.argv[at + 1]! : fallback;
}

const MUTATIONS = Number(option('mutations', '12'));
const random = seededRandom(Number(option('seed', '25')));
const randomInt = (n: number): number => Math.floor(random() * n);

/** Byte flips, truncations, zeroed ranges and inserted junk: what bit rot and hostile edits do. */
function mutate(bytes: Uint8Array): Uint8Array {
  const out = Buffer.from(bytes);
  switch (randomInt(4)) {
    case 0:
      for (let k = 1 + randomInt(4); k > 0; k--) {
        const at = randomInt(out.length);
        out[at] = out[at]! ^ (1 << randomInt(8));
      }
      return out;
    case 1:
      return out.subarray(0, randomInt(out.length));
    case 2: {
      const start = randomInt(out.length);
      out.fill(randomInt(2) === 0 ? 0 : 0xff, start, start + 1 + randomInt(64));
      return out;
    }
    default: {
      const at = randomInt(out.length);
      return Buffer.concat([out.subarray(0, at), Buffer.from(Array.from({ length: 1 + randomInt(32) }, () => randomInt(256))), out.subarray(at)]);
    }
  }
}

const deflated = (bytes: Uint8Array): Deflated => ({ deflated: deflateRawSync(bytes), size: bytes.length, crc: crc32(bytes) >>> 0 });

/** Whether numpy loads every array of an .npz (the reference for "silent"). */
function numpyLoads(file: string): boolean {
  const result = spawnSync('/usr/bin/python3', ['-c', 'import sys, numpy as np\nz = np.load(sys.argv[1])\nfor k in z.files: z[k]', file], { stdio: 'ignore' });
  return result.status === 0;
}

async function buildCases(work: string): Promise<Case[]> {
  const cases: Case[] = [];
  const add = (group: string, name: string, args: string[], expect: Expect = 'any'): void => void cases.push({ group, name, args, expect });
  const onnxModel = path.join(FIXTURES, 'onnx', 'lr1e-4-s1.onnx');
  const onnxOther = path.join(FIXTURES, 'onnx', 'lr3e-4-s2.onnx');
  const val = path.join(FIXTURES, 'data', 'test.npz');
  const dir = async (name: string): Promise<string> => {
    const folder = path.join(work, name);
    await mkdir(folder, { recursive: true });
    return folder;
  };

  // Mutated fixtures, every reader.
  const mutated = await dir('mutated');
  for (let i = 0; i < MUTATIONS; i++) {
    const pt = path.join(mutated, `plain-${i}.pt`);
    await writeFile(pt, mutate(await readFile(path.join(FIXTURES, 'torch', 'plain.pt'))));
    add('pytorch (mutated)', path.basename(pt), ['inspect', pt]);
    const onnx = path.join(mutated, `model-${i}.onnx`);
    await writeFile(onnx, mutate(await readFile(onnxModel)));
    add('onnx (mutated)', path.basename(onnx), ['uniform', onnx, onnxOther, '-o', path.join(mutated, `soup-${i}.onnx`)]);
    const tfjs = path.join(mutated, `tfjs-${i}`);
    await cp(path.join(FIXTURES, 'ingredients', 'lr1e-4-s1'), tfjs, { recursive: true });
    const target = path.join(tfjs, randomInt(2) === 0 ? 'model.json' : 'group1-shard1of1.bin');
    await writeFile(target, mutate(await readFile(target)));
    add('tfjs (mutated)', `${path.basename(tfjs)}/${path.basename(target)}`, ['inspect', tfjs]);
    const npz = path.join(mutated, `test-${i}.npz`);
    await writeFile(npz, mutate(await readFile(val)));
    add('npz (mutated)', path.basename(npz), ['eval', onnxModel, '--val', npz], numpyLoads(npz) ? 'any' : 'refuse');
    const idx = await dir(`mutated/idx-${i}`);
    await cp(path.join(FIXTURES, 'data', 'val'), idx, { recursive: true });
    const idxTarget = path.join(idx, randomInt(2) === 0 ? 'val-images-idx3-ubyte.gz' : 'val-labels-idx1-ubyte.gz');
    await writeFile(idxTarget, mutate(await readFile(idxTarget)));
    add('idx (mutated)', `idx-${i}/${path.basename(idxTarget)}`, ['data', idx]);
  }

  // Pickle amplification and stride-0 views.
  const torch = await dir('torch');
  const amplified = new Pickle().proto(2).emptyDict().unicode('junk').emptyList().put(0).mark();
  for (let i = 0; i < 100_000; i++) amplified.int(1);
  amplified.raw(0x65).emptyList().mark().global('__builtin__', 'set').put(1).get(0).tupleN(1).reduce();
  for (let i = 1; i < 15_000; i++) amplified.get(1).get(0).tupleN(1).reduce();
  amplified.raw(0x65).setItem();
  pushTensor(amplified.unicode('weight'), { name: 'weight', key: '0', numel: 2, shape: [2] })
    .setItem()
    .stop();
  await writeFile(path.join(torch, 'amplified.pt'), torchArchive([], { '0': f32Bytes([1, 2]) }, { pickle: amplified.bytes() }));
  add('pytorch (crafted)', 'set() x15,000 on a memoized 100k list', ['inspect', path.join(torch, 'amplified.pt')], 'refuse');
  const broadcast = [0, 1, 2, 3].map((i) => ({ name: `w${i}`, key: '0', numel: 1, shape: [16384, 16383], stride: [0, 0] }));
  await writeFile(path.join(torch, 'broadcast-a.pt'), torchArchive(broadcast, { '0': f32Bytes([1]) }));
  await writeFile(path.join(torch, 'broadcast-b.pt'), torchArchive(broadcast, { '0': f32Bytes([2]) }));
  add(
    'pytorch (crafted)',
    'stride-0 views of 4 GB',
    ['uniform', path.join(torch, 'broadcast-a.pt'), path.join(torch, 'broadcast-b.pt'), '-o', path.join(torch, 'broadcast.safetensors')],
    'refuse',
  );

  execFileSync('/usr/bin/python3', [
    '-c',
    "import sys, torch\ntorch.save({'w': torch.ones(2), 'junk': list(range(1_000_000))}, sys.argv[1], _use_new_zipfile_serialization=False)",
    path.join(torch, 'big-list.pt'),
  ]);
  add('pytorch (crafted)', 'legacy file with a list of 1 M numbers', ['inspect', path.join(torch, 'big-list.pt')], 'accept');

  // Decompression bombs.
  const bombs = await dir('bombs');
  const samples = 400 * 1024;
  const x = repeatedDeflate(encodeNpy(new Float32Array(0), [samples, 1024]), new Uint8Array(4 * 1024 * 1024), samples / 1024);
  await writeFile(path.join(bombs, 'inflating.npz'), zipOfDeflated({ 'x.npy': x, 'y.npy': deflated(encodeNpy(new Int32Array(samples), [samples])) }));
  add('npz (crafted)', '1.6 GB inflated from 1.6 MB', ['data', path.join(bombs, 'inflating.npz'), '--json']);
  const idxBomb = await dir('bombs/idx');
  await writeFile(
    path.join(idxBomb, 'images-idx3-ubyte.gz'),
    gzipOf(repeatedDeflate(encodeIdxU8(new Uint8Array(0), [3200 * 1024, 32, 32]), new Uint8Array(1024 * 1024), 3200)),
  );
  await writeFile(path.join(idxBomb, 'labels-idx1-ubyte'), encodeIdxU8(new Uint8Array(16), [16]));
  add('idx (crafted)', '3.2 GB gzipped IDX', ['data', idxBomb], 'refuse');
  const padded = path.join(bombs, 'padded.onnx');
  await writeFile(padded, Buffer.concat([await readFile(onnxModel), Buffer.alloc(30_000_000, Buffer.from([0xa0, 0x06, 0x01]))]));
  add('onnx (crafted)', '10 M unknown fields', ['eval', padded, '--val', val], 'refuse');
  const valueInfo = Array.from({ length: 150_000 }, (_, i) => lenField(13, lenField(1, `v${i}`)));
  await writeFile(path.join(bombs, 'info-a.onnx'), encodeModel({ ...linearSpec(1), extraGraphFields: valueInfo }));
  await writeFile(path.join(bombs, 'info-b.onnx'), encodeModel({ ...linearSpec(2), extraGraphFields: valueInfo }));
  add(
    'onnx (crafted)',
    '150k value_info',
    ['uniform', path.join(bombs, 'info-a.onnx'), path.join(bombs, 'info-b.onnx'), '-o', path.join(bombs, 'info.onnx')],
    'accept',
  );
  const gradient = path.join(bombs, 'gradient.yml');
  await writeFile(
    gradient,
    `merge_method: linear\nmodels:\n  - model: ${onnxModel}\n    parameters:\n      weight: [${new Array(400_000).fill('0.5').join(', ')}]\n  - model: ${onnxOther}\n`,
  );
  add('merge (crafted)', '2 MB gradient', ['merge', gradient, '-o', path.join(bombs, 'gradient.onnx')], 'refuse');

  // Image folders: bombs, disguised formats, FIFOs, dangling links, bad preprocessing.
  const images = path.join(FIXTURES, 'data', 'images');
  const imageCase = async (name: string, prepare: (folder: string) => Promise<void>, expect: Expect): Promise<void> => {
    const folder = path.join(work, 'images', name);
    await cp(images, folder, { recursive: true });
    await prepare(folder);
    add('images (crafted)', name, ['data', folder], expect);
  };
  await imageCase('resize 16384', (f) => writeFile(path.join(f, 'dataset.json'), '{"resize": 16384}'), 'refuse');
  await imageCase('crop 16384', (f) => writeFile(path.join(f, 'dataset.json'), '{"crop": 16384}'), 'refuse');
  await imageCase('std 5e-324', (f) => writeFile(path.join(f, 'dataset.json'), '{"resize": 28, "crop": 28, "std": [5e-324]}'), 'refuse');
  await imageCase('scale 1e308', (f) => writeFile(path.join(f, 'dataset.json'), '{"resize": 28, "crop": 28, "scale": 1e308}'), 'refuse');
  await imageCase(
    'SVG named .png',
    (f) => writeFile(path.join(f, '0-tshirt', 'x.png'), '<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"/>'),
    'refuse',
  );
  await imageCase(
    'GIF named .jpg',
    (f) => writeFile(path.join(f, '0-tshirt', 'x.jpg'), Buffer.from('R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7', 'base64')),
    'refuse',
  );
  await imageCase('FIFO x.png', async (f) => void execFileSync('mkfifo', [path.join(f, '0-tshirt', 'x.png')]), 'refuse');
  await imageCase(
    'FIFO dataset.json',
    async (f) => {
      await rm(path.join(f, 'dataset.json'), { force: true });
      execFileSync('mkfifo', [path.join(f, 'dataset.json')]);
    },
    'refuse',
  );
  await imageCase('crop 2048 (1 GB of floats in one batch)', (f) => writeFile(path.join(f, 'dataset.json'), '{"crop": 2048}'), 'accept');
  await imageCase('dangling symlink', (f) => symlink(path.join(work, 'nowhere'), path.join(f, 'zz-dangling')), 'any');

  // Data files with hostile values.
  const data = await dir('data');
  const npz = (arrays: Record<string, Uint8Array>): Uint8Array => zipSync(Object.fromEntries(Object.entries(arrays).map(([k, v]) => [`${k}.npy`, v])));
  await writeFile(
    path.join(data, 'label.npz'),
    npz({ x: encodeNpy(new Float32Array(3 * 784), [3, 784]), y: encodeNpy(Int32Array.from([0, 1, 33_554_432]), [3]) }),
  );
  add('data (crafted)', 'label 33,554,432', ['data', path.join(data, 'label.npz'), '--json'], 'refuse');
  await writeFile(
    path.join(data, 'nan.npz'),
    npz({
      x: encodeNpy(
        Float32Array.from({ length: 3 * 784 }, (_, i) => (i === 5 ? NaN : 0)),
        [3, 784],
      ),
      y: encodeNpy(Int32Array.from([0, 1, 2]), [3]),
    }),
  );
  add('data (crafted)', 'NaN pixel', ['eval', onnxModel, '--val', path.join(data, 'nan.npz')], 'refuse');
  const twice = Buffer.from(encodeNpy(new Float32Array(784), [1, 784]));
  const header = twice.toString('latin1', 10, 128);
  twice.write(`${header.replace("'shape': (1, 784), }", "'shape': (1, 784), 'shape': (2, 392),}").padEnd(header.length - 1, ' ')}\n`, 10, 'latin1');
  await writeFile(path.join(data, 'twice.npz'), npz({ x: twice, y: encodeNpy(Int32Array.from([0]), [1]) }));
  add('data (crafted)', 'duplicate .npy header key', ['data', path.join(data, 'twice.npz')], 'refuse');
  execFileSync('mkfifo', [path.join(data, 'fifo.npz'), path.join(data, 'fifo.yml')]);
  add('data (crafted)', 'FIFO val.npz', ['eval', onnxModel, '--val', path.join(data, 'fifo.npz')], 'refuse');
  add('merge (crafted)', 'FIFO recipe', ['merge', path.join(data, 'fifo.yml'), '-o', path.join(data, 'fifo.onnx')], 'refuse');

  // TF.js manifests and recipes whose names come from the file.
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON whose fields each caller reads by name
  const tfjsCase = async (name: string, edit: (json: any) => void, expect: Expect, raw?: (text: string) => string): Promise<void> => {
    const folder = path.join(work, 'tfjs', name.replace(/[^a-z0-9]+/gi, '-'));
    await cp(path.join(FIXTURES, 'ingredients', 'lr1e-4-s1'), folder, { recursive: true });
    const file = path.join(folder, 'model.json');
    const json = JSON.parse(await readFile(file, 'utf8'));
    edit(json);
    const text = JSON.stringify(json);
    await writeFile(file, raw === undefined ? text : raw(text));
    add('tfjs (crafted)', name, ['uniform', folder, path.join(FIXTURES, 'ingredients', 'lr3e-4-s2'), '-o', `${folder}-soup`], expect);
  };
  await tfjsCase('dtype __proto__', (json) => (json.weightsManifest[0].weights[0].dtype = '__proto__'), 'refuse');
  await tfjsCase('dtype constructor', (json) => (json.weightsManifest[0].weights[0].dtype = 'constructor'), 'refuse');
  await tfjsCase(
    'topology 100k deep',
    (json) => (json.modelTopology.deep = 0),
    'refuse',
    (text) => text.replace('"deep":0', `"deep":${'['.repeat(100_000)}${']'.repeat(100_000)}`),
  );
  await tfjsCase(
    'bool weight, uint8 quantization',
    (json) => {
      const bias = json.weightsManifest[0].weights.find((w: { name: string }) => w.name.endsWith('bias'));
      Object.assign(bias, { dtype: 'bool', shape: [bias.shape[0] * 4], quantization: { dtype: 'uint8', scale: 1, min: 0 } });
    },
    'refuse',
  );
  await tfjsCase('weight named with a newline and escapes', (json) => (json.weightsManifest[0].weights[0].dtype = 'x\n\u001b[2Jsoup: fake line'), 'refuse');
  await tfjsCase('20 MB dtype', (json) => (json.weightsManifest[0].weights[0].dtype = 'x'.repeat(20_000_000)), 'refuse');
  const recipes = await dir('recipes');
  const recipe = async (name: string, text: string): Promise<void> => {
    const file = path.join(recipes, `${name.replace(/[^a-z0-9]+/gi, '-')}.yml`);
    await writeFile(file, text);
    add('merge (crafted)', name, ['merge', file, '-o', path.join(recipes, `${path.basename(file, '.yml')}.onnx`)], 'refuse');
  };
  const aliasLines = [
    'a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]',
    ...['b', 'c', 'd', 'e'].map((n, k) => `${n}: &${n} [${new Array(10).fill(`*${'abcd'[k]}`).join(', ')}]`),
  ];
  await recipe('YAML alias bomb', [...aliasLines, 'merge_method: linear'].join('\n'));
  await recipe(
    'parameter __proto__',
    `merge_method: linear\nmodels:\n  - model: ${onnxModel}\n    parameters: {__proto__: 1, weight: 1}\n  - model: ${onnxOther}\n`,
  );
  await recipe(
    'parameter constructor',
    `merge_method: linear\nmodels:\n  - model: ${onnxModel}\n    parameters: {constructor: 1, weight: 1}\n  - model: ${onnxOther}\n`,
  );

  // A sharded checkpoint with a shard named README.md.
  const readme = await dir('sharded/readme');
  await cp(path.join(FIXTURES, 'torch', 'hf-sharded'), readme, { recursive: true });
  const indexFile = path.join(readme, 'pytorch_model.bin.index.json');
  await writeFile(indexFile, (await readFile(indexFile, 'utf8')).replaceAll('pytorch_model-00002-of-00002.bin', 'README.md'));
  await cp(path.join(readme, 'pytorch_model-00002-of-00002.bin'), path.join(readme, 'README.md'));
  add(
    'pytorch (crafted)',
    'shard named README.md',
    ['uniform', readme, path.join(FIXTURES, 'torch', 'hf-sharded'), '-o', path.join(work, 'sharded', 'readme-soup')],
    'refuse',
  );
  return cases;
}

/** Exit 2 ends in exactly one line "soup: error: ..." of at most ~2,000 characters: no stack, no forged lines. */
function oneErrorLine(lines: string[]): boolean {
  const errors = lines.filter((line) => line.startsWith('soup: error: '));
  const last = lines.at(-1) ?? '';
  return errors.length === 1 && last.startsWith('soup: error: ') && last.length <= 2200 && !lines.some((line) => /^\s+at |internal error/.test(line));
}

function run(c: Case, work: string): Outcome {
  const timeFile = path.join(work, 'time.txt');
  const started = performance.now();
  const result = spawnSync('timeout', ['-s', 'KILL', String(TIME_LIMIT_S), '/usr/bin/time', '-o', timeFile, '-f', '%M', process.execPath, SOUP, ...c.args], {
    cwd: work,
    env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: path.join(work, 'cache') },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const seconds = (performance.now() - started) / 1000;
  const code = result.status ?? 128 + 9;
  let peakKb = 0;
  try {
    peakKb = Number(execFileSync('tail', ['-n', '1', timeFile], { encoding: 'utf8' }).trim()) || 0;
  } catch {
    // killed before time wrote anything
  }
  const stderr = result.stderr ?? '';
  const lines = stderr.split('\n').filter((line) => line !== '' && !line.startsWith('soup: warning:') && !/^Command (exited|terminated)/.test(line));
  const timeKilled = code === 137 || (code === 124 && seconds >= TIME_LIMIT_S - 1);
  let problem: Outcome['problem'];
  if (timeKilled) problem = 'hang';
  else if (peakKb > GIB_KB) problem = 'memory';
  else if (code !== 0 && code !== 2) problem = 'crash';
  else if (code === 2 && !oneErrorLine(lines)) problem = 'crash';
  else if (code === 0 && c.expect === 'refuse') problem = 'silent';
  else if (code !== 0 && c.expect === 'accept') problem = 'crash';
  return { ...c, code, peakKb, seconds, problem, stderr: lines.join('\n').slice(0, 300) };
}

async function main(): Promise<void> {
  const work = await mkdtemp(path.join(tmpdir(), 'soup-hostile-study-'));
  try {
    const cases = await buildCases(work);
    process.stderr.write(`${cases.length} runs\n`);
    const outcomes: Outcome[] = [];
    for (const [k, c] of cases.entries()) {
      const outcome = run(c, work);
      outcomes.push(outcome);
      process.stderr.write(
        `[${k + 1}/${cases.length}] ${c.group} ${c.name}: exit ${outcome.code}, ${Math.round(outcome.peakKb / 1024)} MB, ${outcome.seconds.toFixed(1)} s${outcome.problem === undefined ? '' : `  ${outcome.problem.toUpperCase()}`}\n`,
      );
    }
    const groups = [...new Set(outcomes.map((o) => o.group))];
    const count = (rows: Outcome[], problem: Outcome['problem']): number => rows.filter((o) => o.problem === problem).length;
    const lines = [
      '| readers | runs | exit 0 | exit 2 | crashes | hangs | > 1 GB | silent | peak MB | slowest s |',
      '|---|---|---|---|---|---|---|---|---|---|',
    ];
    for (const group of [...groups, 'total']) {
      const rows = group === 'total' ? outcomes : outcomes.filter((o) => o.group === group);
      const peak = Math.max(...rows.map((o) => o.peakKb)) / 1024;
      const slowest = Math.max(...rows.map((o) => o.seconds));
      lines.push(
        `| ${group} | ${rows.length} | ${rows.filter((o) => o.code === 0).length} | ${rows.filter((o) => o.code === 2).length} | ${count(rows, 'crash')} | ${count(rows, 'hang')} | ${count(rows, 'memory')} | ${count(rows, 'silent')} | ${Math.round(peak)} | ${slowest.toFixed(1)} |`,
      );
    }
    const bad = outcomes.filter((o) => o.problem !== undefined);
    process.stdout.write(`${lines.join('\n')}\n`);
    for (const o of bad)
      process.stdout.write(
        `\n${o.problem}: ${o.group} / ${o.name}: soup ${o.args.map((a) => (a.startsWith(work) ? path.relative(work, a) : a)).join(' ')} -> exit ${o.code}, ${Math.round(o.peakKb / 1024)} MB\n  ${o.stderr}\n`,
      );
    const out = option('out', '');
    if (out !== '') await writeFile(out, JSON.stringify({ table: lines, outcomes }, null, 2));
    process.exitCode = bad.length === 0 ? 0 : 1;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

await main();
