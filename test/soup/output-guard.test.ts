import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { listFiles, mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();

/** A folder of two runs, as a sweep leaves them. */
async function sweep(name: string): Promise<string> {
  const runs = path.join(dir, name);
  await writeSafetensorsFile(path.join(runs, 'a.safetensors'), mlpTensors(1));
  await writeSafetensorsFile(path.join(runs, 'b.safetensors'), mlpTensors(2));
  return runs;
}

async function refused(args: string[], message: string): Promise<void> {
  const result = await runSoup(args);
  assert.equal(result.stderr, `soup: error: ${message}\n`);
  assert.equal(result.code, 2);
}

describe('what --force may replace', () => {
  it('refuses an output that is the folder of the ingredients, is an ingredient, or sits inside one, with or without --force', async () => {
    const runs = await sweep('runs');
    const before = await listFiles(runs);
    for (const force of [['--force'], []]) {
      await refused(
        ['uniform', runs, '-o', runs, ...force],
        `${runs} holds ${path.join(runs, 'a.safetensors')}, an input of this soup; soup never writes over its inputs (choose another -o)`,
      );
      const a = path.join(runs, 'a.safetensors');
      await refused(['uniform', runs, '-o', a, ...force], `${a} is an input of this soup; soup never writes over its inputs (choose another -o)`);
    }
    const folder = path.join(dir, 'folder-ingredients');
    await writeSafetensorsFile(path.join(folder, 'checkpoint-1', 'model.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(folder, 'checkpoint-2', 'model.safetensors'), mlpTensors(2));
    const inside = path.join(folder, 'checkpoint-1', 'soup.safetensors');
    await refused(
      ['uniform', folder, '-o', inside, '--force'],
      `${inside} is inside ${path.join(folder, 'checkpoint-1')}, an input of this soup; soup never writes over its inputs (choose another -o)`,
    );
    assert.deepEqual(await listFiles(runs), before);
  });

  it('refuses an output that is the --base of a merge or the --val of a greedy soup', async () => {
    const runs = await sweep('merge-runs');
    const base = await writeSafetensorsFile(path.join(dir, 'base.safetensors'), mlpTensors(0));
    await refused(
      ['merge', runs, '--method', 'task_arithmetic', '--base', base, '-o', base, '--force'],
      `${base} is an input of this soup; soup never writes over its inputs (choose another -o)`,
    );
    const val = path.join(dir, 'val.jsonl');
    await writeFile(val, '{"text": "kept"}\n');
    await refused(
      ['greedy', runs, '--eval-cmd', 'echo 1 # {ckpt} {data}', '--val', val, '-o', val, '--force'],
      `${val} is an input of this soup; soup never writes over its inputs (choose another -o)`,
    );
    assert.equal(await readFile(val, 'utf8'), '{"text": "kept"}\n');
  });

  it('refuses to replace a folder soup did not write: other files, a model folder without a recipe, a directory named like a file', async () => {
    const runs = await sweep('foreign-runs');
    const home = path.join(dir, 'home');
    await mkdir(home);
    await writeFile(path.join(home, 'thesis.tex'), 'years of work');
    await refused(
      ['uniform', runs, '-o', home, '--force'],
      `${home} is a folder that soup did not write (it holds "thesis.tex"); --force replaces only a soup's own output (remove or rename it yourself, or choose another -o)`,
    );
    const model = path.join(dir, 'checkpoint-900');
    await writeSafetensorsFile(path.join(model, 'model.safetensors'), mlpTensors(9));
    await writeFile(path.join(model, 'config.json'), '{}');
    await refused(
      ['uniform', runs, '-o', model, '--force'],
      `${model} is a folder that soup did not write (its weights carry no soup recipe); --force replaces only a soup's own output (remove or rename it yourself, or choose another -o)`,
    );
    const named = path.join(dir, 'x.safetensors');
    await mkdir(path.join(named, 'data'), { recursive: true });
    await refused(
      ['uniform', runs, '-o', named, '--force'],
      `${named} is a folder that soup did not write (it holds "data"); --force replaces only a soup's own output (remove or rename it yourself, or choose another -o)`,
    );
    assert.equal(await readFile(path.join(home, 'thesis.tex'), 'utf8'), 'years of work');
    assert.deepEqual(await readdir(model), ['config.json', 'model.safetensors']);
  });

  it('replaces, with --force, a folder soup wrote, and a file', async () => {
    const folder = path.join(dir, 'folder-runs');
    await writeSafetensorsFile(path.join(folder, 'checkpoint-1', 'model.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(folder, 'checkpoint-2', 'model.safetensors'), mlpTensors(2));
    await writeFile(path.join(folder, 'checkpoint-1', 'config.json'), '{"model_type":"bert"}');
    const out = path.join(dir, 'soup-folder');
    assert.equal((await runSoup(['uniform', folder, '-o', out])).code, 0);
    const again = await runSoup(['uniform', folder, '-o', out, '--force']);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(await readdir(out), ['README.md', 'config.json', 'model.safetensors']);
    const file = path.join(dir, 'old.safetensors');
    await writeFile(file, 'old soup');
    assert.equal((await runSoup(['uniform', folder, '-o', file, '--force'])).code, 0);
  });
});
