import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ShardedSafetensors, shardFileName } from '../../src/checkpoint/sharded.js';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { TfjsCheckpoint } from '../../src/checkpoint/tfjs.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { PytorchFile } from '../../src/checkpoint/pytorch/reader.js';
import { Mixer } from '../../src/soup/kernel/mix.js';
import { collect, mlpTensors, tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';
import { saveTinyModel } from '../helpers/tfjs.js';

const dir = await tempDir();

async function sweep(name: string, seeds = [1, 2, 3], edit?: (seed: number, tensors: Record<string, RawTensor>) => void): Promise<string> {
  const folder = path.join(dir, name);
  for (const seed of seeds) {
    const tensors = mlpTensors(seed);
    edit?.(seed, tensors);
    await writeSafetensorsFile(path.join(folder, `run-${seed}.safetensors`), tensors, { format: 'pt' });
  }
  return folder;
}

/** What a test expects: the element-wise mean of mlpTensors over the seeds, computed directly. */
function expectedMean(name: string, seeds: number[]): number[] {
  const columns = seeds.map((seed) => mlpTensors(seed)[name]!.values!);
  return columns[0]!.map((_, i) => Math.fround(columns.reduce((sum, values) => sum + values[i]!, 0) / seeds.length));
}

/** Files left in a folder, including hidden temporary ones. */
const leftovers = async (folder: string) => (await readdir(folder)).filter((f) => f.includes('.tmp-'));

function assertOneLineError(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  assert.match(lines[0]!, /^soup: error: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
}

describe('soup uniform at the scale of large models', () => {
  it('shares the arithmetic with a helper thread and writes the same bytes as one thread, to safetensors and to torch.save files', async () => {
    // 16M elements per ingredient (the threshold for the helper thread), in bfloat16.
    const elements = 1 << 24;
    const folder = path.join(dir, 'large');
    const seeds = [11, 12, 13];
    for (const seed of seeds) {
      const bits = new Uint16Array(elements);
      let state = seed;
      for (let i = 0; i < elements; i++) {
        state = (state * 1103515245 + 12345) >>> 0;
        bits[i] = 0x3c00 + (state >>> 22);
      }
      await writeSafetensorsFile(path.join(folder, `run-${seed}.safetensors`), {
        w: { dtype: 'BF16', shape: [elements], bytes: new Uint8Array(bits.buffer) },
        b: { dtype: 'F32', shape: [3], values: [seed, 1, 2] },
      });
    }
    const checkpoints = await Promise.all(seeds.map((seed) => SafetensorsFile.open(path.join(folder, `run-${seed}.safetensors`))));
    const expected = Buffer.from(await collect(new Mixer(checkpoints).producer([1, 1, 1])({ name: 'w', shape: [elements], dtype: 'BF16' }, 0)));
    await Promise.all(checkpoints.map((checkpoint) => checkpoint.close()));
    for (const out of [path.join(dir, 'large.safetensors'), path.join(dir, 'large.pt')]) {
      const result = await runSoup(['uniform', folder, '-o', out]);
      assert.equal(result.code, 0, result.stderr);
      const soup = out.endsWith('.pt') ? await PytorchFile.open(out) : await SafetensorsFile.open(out);
      assert.ok(Buffer.from(await soup.readBytes('w')).equals(expected), `${path.basename(out)}: the helper thread's soup differs`);
      assert.deepEqual([...(await soup.readFloats('b'))], [12, 1, 2]);
      await soup.close();
    }
  });
});

describe('soup uniform', () => {
  it('averages a folder of safetensors into one file, with a summary on stdout and nothing on stderr', async () => {
    const folder = await sweep('basic');
    const out = path.join(dir, 'basic.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    assert.match(result.stdout, /^Uniform soup of 3 ingredients -> .*basic\.safetensors$/m);
    assert.match(result.stdout, /^ {2}ingredients {2}run-1, run-2, run-3$/m);
    assert.match(result.stdout, /^ {2}tensors {6}4 \(26 parameters\)$/m);
    const soup = await SafetensorsFile.open(out);
    assert.deepEqual(
      soup.tensors().map((t) => [t.name, t.dtype, t.shape]),
      Object.entries(mlpTensors(1)).map(([n, t]) => [n, t.dtype, t.shape]),
    );
    for (const name of ['fc1.weight', 'fc2.bias']) assert.deepEqual([...(await soup.readFloats(name))], expectedMean(name, [1, 2, 3]));
    assert.equal(soup.metadata.format, 'pt', "the ingredients' metadata is kept");
    await soup.close();
  });

  it('embeds the recipe with the SHA-256 of every ingredient file', async () => {
    const folder = await sweep('recipe', [4, 5]);
    const out = path.join(dir, 'recipe.safetensors');
    assert.equal((await runSoup(['uniform', folder, '-o', out])).code, 0);
    const soup = await SafetensorsFile.open(out);
    const recipe = readRecipe(soup)!;
    const sha = createHash('sha256')
      .update(await readFile(path.join(folder, 'run-4.safetensors')))
      .digest('hex');
    assert.equal(recipe.strategy, 'uniform');
    assert.equal(recipe.tool, 'model-soup');
    assert.deepEqual(recipe.chosen, ['run-4', 'run-5']);
    assert.deepEqual(recipe.ingredients[0], { name: 'run-4', sha256: { 'run-4.safetensors': sha } });
    await soup.close();
  });

  it('remembers ingredient hashes between runs, and hashes a file again once it changes', async () => {
    const folder = await sweep('cache', [1, 2]);
    const out = path.join(dir, 'cache.safetensors');
    assert.equal((await runSoup(['uniform', folder, '-o', out])).code, 0);
    const cacheFile = path.join(TEST_CACHE_HOME, 'model-soup', 'sha256-v1.json');
    const cache = JSON.parse(await readFile(cacheFile, 'utf8'));
    const file = path.join(folder, 'run-1.safetensors');
    const real = createHash('sha256')
      .update(await readFile(file))
      .digest('hex');
    assert.equal(cache[file].sha256, real);
    // A planted hash is used as long as the file is unchanged: proof that the cache is read.
    cache[file].sha256 = 'f'.repeat(64);
    await writeFile(cacheFile, JSON.stringify(cache));
    assert.equal((await runSoup(['uniform', folder, '-o', out, '--force'])).code, 0);
    const recipeOf = async () => {
      const soup = await SafetensorsFile.open(out);
      const recipe = readRecipe(soup)!;
      await soup.close();
      return recipe.ingredients[0]!.sha256['run-1.safetensors'];
    };
    assert.equal(await recipeOf(), 'f'.repeat(64));
    await writeFile(file, await readFile(file));
    assert.equal((await runSoup(['uniform', folder, '-o', out, '--force'])).code, 0);
    assert.equal(await recipeOf(), real, 'a rewritten file is hashed again');
  });

  it('writes byte-identical soups from the same inputs', async () => {
    const folder = await sweep('repro', [1, 2]);
    const [a, b] = [path.join(dir, 'repro-a.safetensors'), path.join(dir, 'repro-b.safetensors')];
    await runSoup(['uniform', folder, '-o', a]);
    await runSoup(['uniform', folder, '-o', b]);
    assert.deepEqual(await readFile(a), await readFile(b));
  });

  it('prints exactly one JSON document with --json', async () => {
    const folder = await sweep('json', [1, 2]);
    const out = path.join(dir, 'json.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, '');
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.strategy, 'uniform');
    assert.deepEqual(doc.ingredients, [
      { name: 'run-1', path: path.join(folder, 'run-1.safetensors') },
      { name: 'run-2', path: path.join(folder, 'run-2.safetensors') },
    ]);
    assert.deepEqual(doc.chosen, ['run-1', 'run-2']);
    assert.equal(doc.output, out);
  });

  it('keeps an existing output unless --force, and replaces it with --force', async () => {
    const folder = await sweep('force', [1, 2]);
    const out = path.join(dir, 'force.safetensors');
    await writeFile(out, 'precious');
    const refused = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(refused.code, 2);
    assertOneLineError(refused.stderr, /force\.safetensors already exists \(pass --force to replace it\)/);
    assert.equal(await readFile(out, 'utf8'), 'precious');
    const forced = await runSoup(['uniform', folder, '-o', out, '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    const soup = await SafetensorsFile.open(out);
    assert.equal(soup.tensors().length, 4);
    await soup.close();
  });

  it('refuses ingredients whose shapes disagree before writing anything', async () => {
    const folder = await sweep('mismatch', [1, 2], (seed, tensors) => {
      if (seed === 2) tensors['fc1.weight'] = { dtype: 'F32', shape: [3, 4], values: new Array(12).fill(0) };
    });
    const out = path.join(dir, 'mismatch.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 2);
    assertOneLineError(result.stderr, /size mismatch for fc1\.weight: \[4, 3\] in .*run-1\.safetensors vs \[3, 4\] in .*run-2\.safetensors/);
    await assert.rejects(stat(out));
    assert.deepEqual(await leftovers(dir), []);
  });

  it('reports a malformed file in one line, with a stack trace only under --debug', async () => {
    const folder = await sweep('malformed', [1, 2]);
    const broken = path.join(folder, 'run-2.safetensors');
    const whole = await readFile(broken);
    await writeFile(broken, whole.subarray(0, whole.length - 10));
    const out = path.join(dir, 'malformed.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 2);
    assertOneLineError(
      result.stderr,
      new RegExp(`${broken.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: tensor data ends at byte 104 but the file holds 94 data bytes: the file is truncated`),
    );
    const debug = await runSoup(['uniform', folder, '-o', out, '--debug']);
    assert.equal(debug.code, 2);
    assert.match(debug.stderr, /\n\s+at /);
  });

  it('names a missing input', async () => {
    const result = await runSoup(['uniform', path.join(dir, 'nowhere'), '-o', path.join(dir, 'x.safetensors')]);
    assert.equal(result.code, 2);
    assertOneLineError(result.stderr, /nowhere: no such file or directory/);
  });

  it('refuses a misspelt -o suffix with exit 2, naming the known ones, and writes nothing', async () => {
    const runs = await sweep('typo-runs', [1, 2]);
    const out = path.join(dir, 'typo', 'soup.safetensor');
    await mkdir(path.dirname(out));
    const result = await runSoup(['uniform', runs, '-o', out]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${out}: .safetensor is not a suffix soup writes: .safetensors, .onnx, .pt, .pth, .bin or .ckpt make one file, no suffix a folder (did you mean .safetensors? For a folder named so, end it with a slash: ${out}/)\n`,
    );
    assert.deepEqual(await readdir(path.dirname(out)), []);
  });

  it('refuses a NaN weight and leaves no partial file; --allow-nonfinite lets it through', async () => {
    const folder = await sweep('nan', [1, 2], (seed, tensors) => {
      if (seed === 2) tensors['fc2.bias'] = { dtype: 'F32', shape: [2], values: [0, NaN] };
    });
    const out = path.join(dir, 'nan.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 2);
    assertOneLineError(result.stderr, /run-2\.safetensors: tensor "fc2\.bias": holds NaN at element 1.*--allow-nonfinite/);
    await assert.rejects(stat(out), 'no output');
    assert.deepEqual(await leftovers(dir), [], 'the temporary file is removed');
    const allowed = await runSoup(['uniform', folder, '-o', out, '--allow-nonfinite']);
    assert.equal(allowed.code, 0, allowed.stderr);
  });

  it('keeps the previous output intact when a --force run fails half-way', async () => {
    const folder = await sweep('half-way', [1, 2], (seed, tensors) => {
      if (seed === 2) tensors['fc2.bias'] = { dtype: 'F32', shape: [2], values: [0, Infinity] };
    });
    const out = path.join(dir, 'half-way.safetensors');
    await writeFile(out, 'previous soup');
    const result = await runSoup(['uniform', folder, '-o', out, '--force']);
    assert.equal(result.code, 2);
    assert.equal(await readFile(out, 'utf8'), 'previous soup');
    assert.deepEqual(await leftovers(dir), []);
  });

  it('writes --dtype bf16 and f16 as asked', async () => {
    const folder = await sweep('dtype', [1, 2]);
    for (const [flag, dtype] of [
      ['bf16', 'BF16'],
      ['f16', 'F16'],
    ] as const) {
      const out = path.join(dir, `dtype-${flag}.safetensors`);
      const result = await runSoup(['uniform', folder, '-o', out, '--dtype', flag]);
      assert.equal(result.code, 0, result.stderr);
      const soup = await SafetensorsFile.open(out);
      assert.ok(soup.tensors().every((t) => t.dtype === dtype));
      assert.equal((await soup.readFloats('fc1.bias'))[0], 16, '(11 + 21) / 2 is exact in both');
      await soup.close();
    }
    const bad = await runSoup(['uniform', folder, '-o', path.join(dir, 'x.safetensors'), '--dtype', 'int4']);
    assert.equal(bad.code, 2);
    assertOneLineError(bad.stderr, /--dtype: unknown dtype "int4" \(use f32, f16, bf16 or f64\)/);
  });

  it('copies integer tensors and warns on stderr when they differ; --quiet silences the warning', async () => {
    const folder = await sweep('ints', [1, 2], (seed, tensors) => {
      tensors.num_batches_tracked = { dtype: 'I64', shape: [], bytes: new Uint8Array(new BigInt64Array([BigInt(seed * 100)]).buffer) };
    });
    const out = path.join(dir, 'ints.safetensors');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stderr, `soup: warning: I64 tensor "num_batches_tracked" differs between ingredients (run-2 differ from run-1); kept run-1's values\n`);
    const soup = await SafetensorsFile.open(out);
    assert.deepEqual([...new BigInt64Array((await soup.readBytes('num_batches_tracked')).buffer)], [100n]);
    await soup.close();
    const quiet = await runSoup(['uniform', folder, '-o', out, '--force', '--quiet']);
    assert.equal(quiet.stderr, '');
  });

  it('soups TF.js models into a TF.js folder, or into safetensors when -o says so', async () => {
    const folder = path.join(dir, 'tfjs-runs');
    const a = await saveTinyModel(path.join(folder, 'a'), 11, 2);
    const b = await saveTinyModel(path.join(folder, 'b'), 12);
    const out = path.join(dir, 'tfjs-soup');
    const result = await runSoup(['uniform', folder, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(out)).sort(), ['README.md', 'group1-shard1of1.bin', 'model.json'], 'the weights and a model card');
    const soup = await TfjsCheckpoint.open(out);
    assert.deepEqual(soup.modelJson.modelTopology, (await TfjsCheckpoint.open(a.folder)).modelJson.modelTopology, 'opened without reading: no file stays open');
    const kernel = await soup.readFloats('hidden/kernel');
    const [ka, kb] = [a.weights.get('hidden/kernel')!, b.weights.get('hidden/kernel')!];
    assert.deepEqual(
      [...kernel],
      [...ka].map((v, i) => Math.fround((v + kb[i]!) / 2)),
    );
    assert.equal(readRecipe(soup)?.strategy, 'uniform');
    await soup.close();

    const asSafetensors = path.join(dir, 'tfjs-soup.safetensors');
    assert.equal((await runSoup(['uniform', folder, '-o', asSafetensors])).code, 0);
    const converted = await SafetensorsFile.open(asSafetensors);
    assert.deepEqual([...(await converted.readFloats('hidden/kernel'))], [...kernel]);
    await converted.close();

    const bf16 = await runSoup(['uniform', folder, '-o', path.join(dir, 'tfjs-bf16'), '--dtype', 'bf16']);
    assert.equal(bf16.code, 2);
    assertOneLineError(
      bf16.stderr,
      /a TF\.js model cannot store BF16 tensors \(tensor "hidden\/kernel"\) \(use --dtype f32 or f16, or write a \.safetensors file\)/,
    );
  });

  it('soups sharded checkpoints into the same shard layout', async () => {
    const runs = path.join(dir, 'sharded-runs');
    for (const seed of [1, 2]) {
      const folder = path.join(runs, `run-${seed}`);
      const t = mlpTensors(seed);
      await writeSafetensorsFile(path.join(folder, shardFileName(0, 2)), { 'fc1.weight': t['fc1.weight']!, 'fc1.bias': t['fc1.bias']! });
      await writeSafetensorsFile(path.join(folder, shardFileName(1, 2)), { 'fc2.weight': t['fc2.weight']!, 'fc2.bias': t['fc2.bias']! });
      const weightMap = {
        'fc1.weight': shardFileName(0, 2),
        'fc1.bias': shardFileName(0, 2),
        'fc2.weight': shardFileName(1, 2),
        'fc2.bias': shardFileName(1, 2),
      };
      await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
    }
    const out = path.join(dir, 'sharded-soup');
    const result = await runSoup(['uniform', runs, '-o', out]);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual((await readdir(out)).sort(), [
      'README.md',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    const index = JSON.parse(await readFile(path.join(out, 'model.safetensors.index.json'), 'utf8'));
    assert.equal(index.metadata.total_size, 104);
    const soup = await ShardedSafetensors.open(out);
    assert.deepEqual([...(await soup.readFloats('fc2.weight'))], expectedMean('fc2.weight', [1, 2]));
    await soup.close();
  });

  it('stops on SIGINT with exit 130, leaving neither output nor temporary file', async () => {
    const folder = path.join(dir, 'big');
    const size = 8_000_000;
    for (const seed of [1, 2, 3, 4]) {
      await writeSafetensorsFile(path.join(folder, `big-${seed}.safetensors`), {
        a: { dtype: 'F32', shape: [size], bytes: new Uint8Array(size * 4).fill(seed) },
        b: { dtype: 'F32', shape: [size], bytes: new Uint8Array(size * 4).fill(seed) },
      });
    }
    const outDir = path.join(dir, 'sigint');
    await mkdir(outDir);
    const out = path.join(outDir, 'big.safetensors');
    const child = spawn(process.execPath, [SOUP_BIN, 'uniform', folder, '-o', out], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, XDG_CACHE_HOME: TEST_CACHE_HOME },
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    // Interrupt once the temporary output exists, i.e. in the middle of writing.
    while ((await readdir(outDir)).length === 0 && child.exitCode === null) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const code = await exited;
    assert.equal(code, 130, stderr);
    assert.match(stderr, /^soup: error: interrupted by SIGINT; nothing was written$/m);
    assert.deepEqual(await readdir(outDir), []);
  });
});
