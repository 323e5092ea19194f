import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

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
    for (const format of ['.safetensors', 'PyTorch files (.pt, .pth, .bin, .ckpt', 'model.json', '.onnx']) assert.ok(result.stdout.includes(format), `--help names ${format} inputs`);
    for (const command of ['uniform', 'greedy', 'learned', 'evolve', 'interpolate', 'merge', 'eval', 'compare', 'diff', 'inspect', 'card', 'data']) {
      assert.match(result.stdout, new RegExp(`^  ${command} `, 'm'), `--help lists ${command}`);
    }
    const sub = await runSoup(['uniform', '--help']);
    assert.equal(sub.code, 0);
    assert.match(sub.stdout, /--dtype <dtype>/);
    assert.match(sub.stdout, /Examples:/);
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
