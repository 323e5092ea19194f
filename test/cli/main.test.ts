import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { shellQuote } from '../../src/shell.js';
import { SOUP_BIN, TEST_CACHE_HOME, runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile, type RawTensor } from '../helpers/files.js';

const dir = await tempDir();
const ckpt = await writeSafetensorsFile(path.join(dir, 'a.safetensors'), mlpTensors(1));
const ANSI = /\u001b\[/;

describe('soup', () => {
  it('shows help with examples and exit codes, exit 0', async () => {
    const result = await runSoup(['--help']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^Usage: soup \[options\] \[command\]/);
    assert.match(result.stdout, /Examples:\n {2}\$ soup uniform \.\/ckpts -o soup\.safetensors/);
    assert.match(result.stdout, /Exit codes: 0 success, 1 internal error, 2 bad usage or input/);
    for (const format of ['.safetensors', 'PyTorch files (.pt, .pth, .bin, .ckpt', 'model.json', '.onnx'])
      assert.ok(result.stdout.includes(format), `--help names ${format} inputs`);
    for (const command of ['uniform', 'greedy', 'learned', 'evolve', 'interpolate', 'merge', 'eval', 'compare', 'diff', 'inspect', 'card', 'data']) {
      assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'), `--help lists ${command}`);
    }
    const sub = await runSoup(['uniform', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--dtype <dtype>/);
    assert.match(sub.stdout, /Examples:/);
  });

  it('says the same thing about a flag in every command that takes it, and lists no flag a command ignores', async () => {
    const commands = ['uniform', 'greedy', 'learned', 'evolve', 'interpolate', 'merge', 'eval', 'compare', 'diff', 'inspect', 'card', 'data'];
    const texts = new Map<string, Map<string, string>>();
    for (const command of commands) {
      const { stdout } = await runSoup([command, '--help']);
      assert.doesNotMatch(stdout, /\(default: "|\(default [^:]/, `${command}: every default reads (default: X)`);
      const block = stdout.split('\nOptions:\n')[1]!.split('\n\n')[0]!;
      // Commander wraps a long description onto lines indented under it: join them back.
      for (const entry of block.split(/\n(?= {2}-)/)) {
        const match = /^ {2}(?:-\w, )?(--[\w-]+)\S*(?: <[^>]+>)?\s+([\s\S]*)$/.exec(entry);
        if (match === null) continue;
        const flag = match[1]!;
        if (!texts.has(flag)) texts.set(flag, new Map());
        texts.get(flag)!.set(command, match[2]!.replace(/\s+/g, ' ').trim());
      }
    }
    // Each command draws its own figure; learned's batches are training batches; learned searches
    // mixing logits and evolve a recipe's ranges, so their search settings say what they search.
    const meaningDiffers = new Set(['--plot', '--batch-size', '--seed', '--evaluations', '--population', '--sigma']);
    for (const [flag, byCommand] of texts) {
      if (meaningDiffers.has(flag)) continue;
      const distinct = new Set(byCommand.values());
      assert.equal(distinct.size, 1, `${flag} reads differently across ${[...byCommand.keys()].join(', ')}:\n${[...distinct].join('\n')}`);
    }
    assert.ok(texts.get('--json')!.size === commands.length && texts.get('--allow-fused')!.size >= 5, 'the help of every command was read');
    assert.deepEqual(
      [...texts.get('--jobs')!.keys()],
      ['greedy', 'learned', 'evolve', 'interpolate', 'compare'],
      'only commands that score several candidates take --jobs',
    );
    assert.ok(!texts.get('--key')!.has('data') && !texts.get('--checkpoints')!.has('data'), 'data reads no checkpoints');
    assert.match(texts.get('--output')!.get('uniform')!, /\.safetensors; \.pt, \.pth, \.bin, \.ckpt; \.onnx/);
  });

  it('with --json, an error is a JSON document on stdout too, and a failed gate adds none to the one printed', async () => {
    const missing = await runSoup(['uniform', path.join(dir, 'nowhere'), '-o', path.join(dir, 'x.safetensors'), '--json']);
    assert.equal(missing.code, 2);
    assert.deepEqual(JSON.parse(missing.stdout), { error: { message: `${path.join(dir, 'nowhere')}: no such file or directory`, exitCode: 2 } });
    assert.equal(missing.stderr, `soup: error: ${path.join(dir, 'nowhere')}: no such file or directory\n`);
    const other = await writeSafetensorsFile(path.join(dir, 'b.safetensors'), mlpTensors(2));
    const typo = await runSoup(['uniform', ckpt, other, '-o', path.join(dir, 'x.safetensor'), '--json']);
    assert.match(JSON.parse(typo.stdout).error.hint, /^did you mean \.safetensors\?/);
    const usage = await runSoup(['inspect', ckpt, '--json', '--bogus']);
    assert.deepEqual([usage.code, JSON.parse(usage.stdout)], [2, { error: { message: "unknown option '--bogus'", exitCode: 2 } }]);
    const differ = await runSoup(['diff', ckpt, other, '--json']);
    assert.equal(differ.code, 3);
    assert.equal(JSON.parse(differ.stdout).verdict, 'different', 'one document: the diff itself');
    const plain = await runSoup(['uniform', path.join(dir, 'nowhere'), '-o', path.join(dir, 'x.safetensors')]);
    assert.equal(plain.stdout, '', 'without --json, stdout stays empty');
  });

  it('prints its version', async () => {
    const result = await runSoup(['--version']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('exits 2 on an unknown command, an unknown option or a missing argument', async () => {
    for (const args of [['frobnicate'], ['uniform', ckpt, '--frob'], ['uniform']]) {
      const result = await runSoup(args);
      assert.equal(result.code, 2, args.join(' '));
      assert.match(result.stderr, /^soup: error: /);
    }
  });

  it('exits 2 when uniform has no -o', async () => {
    const result = await runSoup(['uniform', ckpt]);
    assert.equal(result.code, 2);
    assert.equal(result.stderr, 'soup: error: --output: is required: where to write the soup\n');
  });

  it('colours output only when allowed: FORCE_COLOR yes, NO_COLOR and --no-color no', async () => {
    const coloured = await runSoup(['inspect', ckpt], { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    assert.match(coloured.stdout, ANSI);
    const noColorEnv = await runSoup(['inspect', ckpt], { env: { NO_COLOR: '1', FORCE_COLOR: '1' } });
    assert.doesNotMatch(noColorEnv.stdout, ANSI);
    const noColorFlag = await runSoup(['inspect', ckpt, '--no-color'], { env: { NO_COLOR: undefined, FORCE_COLOR: '1' } });
    assert.doesNotMatch(noColorFlag.stdout, ANSI);
  });
});

describe('stdout at exit', () => {
  it('a --json document of 200 KB arrives whole through a pipe whose reader starts late', async () => {
    const tensors: Record<string, RawTensor> = {};
    for (let k = 0; k < 1500; k++) tensors[`encoder.layers.${k}.attention.output.dense.weight`] = { dtype: 'F32', shape: [1], values: [k] };
    const file = await writeSafetensorsFile(path.join(dir, 'many.safetensors'), tensors);
    const [received, status] = [path.join(dir, 'received.json'), path.join(dir, 'status')];
    // A reader that sleeps first, as `| jq` on a busy machine: only the pipe's 64 KiB sit between them.
    const script = `(${shellQuote(process.execPath)} ${shellQuote(SOUP_BIN)} inspect ${shellQuote(file)} --json; echo $? > ${shellQuote(status)}) | (sleep 1.5; cat > ${shellQuote(received)})`;
    const result = spawnSync('/bin/sh', ['-c', script], { env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME } });
    assert.equal(result.status, 0);
    assert.equal(await readFile(status, 'utf8'), '0\n');
    const text = await readFile(received, 'utf8');
    assert.ok(text.length > 200_000, `only ${text.length} bytes arrived`);
    assert.doesNotThrow(() => JSON.parse(text), 'the document parses');
    assert.match(text, /encoder\.layers\.1499\.attention/);
  });

  it('a reader that stops early (| head) ends soup with its own exit code and no stack trace', async () => {
    const status = path.join(dir, 'status-head');
    const script = `(${shellQuote(process.execPath)} ${shellQuote(SOUP_BIN)} inspect ${shellQuote(path.join(dir, 'many.safetensors'))} --json; echo $? > ${shellQuote(status)}) | head -c 10 > /dev/null`;
    const result = spawnSync('/bin/sh', ['-c', script], { env: { ...process.env, NO_COLOR: '1', XDG_CACHE_HOME: TEST_CACHE_HOME } });
    assert.equal(await readFile(status, 'utf8'), '0\n');
    assert.equal(result.stderr.toString(), '', 'nothing on stderr: no EPIPE stack trace');
  });
});
