import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';
import { Pickle, callingPickle, f32Bytes, pushTensor, simpleArchive, storedZip, torchArchive } from '../helpers/torch.js';

const fixtures = new URL('../../../fixtures/torch/', import.meta.url).pathname;
const expected = JSON.parse(await readFile(path.join(fixtures, 'expected.json'), 'utf8')).fixtures as Record<
  string,
  { tensors: Record<string, { values: number[] }> }
>;
const dir = await tempDir('soup-torch-cli-');

describe('soup on PyTorch checkpoints', () => {
  it('makes a uniform soup of a folder of .pt runs into a .safetensors file', async () => {
    const out = path.join(dir, 'soup.safetensors');
    const result = await runSoup(['uniform', path.join(fixtures, 'runs'), '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).chosen, ['run-1', 'run-2', 'run-3']);
    const soup = await SafetensorsFile.open(out);
    for (const tensor of soup.tensors()) {
      const runs = [1, 2, 3].map((i) => expected[`runs/run-${i}.pt`]!.tensors[tensor.name]!.values);
      const got = await soup.readFloats(tensor.name);
      got.forEach((value, j) => assert.ok(Math.abs(value - (runs[0]![j]! + runs[1]![j]! + runs[2]![j]!) / 3) < 1e-6, tensor.name));
    }
    await soup.close();
  });

  it('inspects a training checkpoint: the entry used, the entries ignored, tied weights', async () => {
    const result = await runSoup(['inspect', path.join(fixtures, 'training.ckpt'), path.join(fixtures, 'plain.pt')]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(
      result.stdout,
      /^training {2}.*training\.ckpt\n {2}pytorch, 4 tensors, 26 parameters, 104 B\n {2}weights from entry "model_state_dict"; ignored: epoch, optimizer_state_dict, loss$/m,
    );
    assert.match(result.stdout, /These 2 checkpoints can be souped together\./);
    const tied = await runSoup(['inspect', path.join(fixtures, 'tied.pt'), '--json']);
    const doc = JSON.parse(tied.stdout);
    assert.deepEqual(doc.checkpoints[0].tensors[2], { name: 'head.weight', dtype: 'F32', shape: [5, 3], tiedTo: 'embed.weight' });
  });

  it('shows the recipe a soup written as .pt carries in its soup.recipe record', async () => {
    const file = path.join(dir, 'souped.pt');
    const recipe = { tool: 'soup', version: '0.1.0', strategy: 'uniform', ingredients: [], chosen: ['a', 'b'] };
    await writeFile(file, simpleArchive({ extra: [{ name: 'archive/soup.recipe', data: Buffer.from(JSON.stringify(recipe)) }] }));
    const result = await runSoup(['inspect', file]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^ {2}recipe: uniform soup of a, b \(soup 0\.1\.0\)$/m);
  });

  it('reads the weights under --key NAME', async () => {
    const file = path.join(dir, 'ema.pt');
    const p = new Pickle().proto(2).emptyDict().mark().unicode('ema').emptyDict();
    pushTensor(p.unicode('w'), { name: 'w', key: '0', numel: 2, shape: [2] }).setItem();
    p.unicode('model').emptyDict();
    pushTensor(p.unicode('w'), { name: 'w', key: '1', numel: 1, shape: [1] })
      .setItem()
      .setItems()
      .stop();
    await writeFile(file, torchArchive([], { '0': f32Bytes([1, 2]), '1': f32Bytes([3]) }, { pickle: p.bytes() }));
    const plain = await runSoup(['inspect', file, '--json']);
    assert.deepEqual(JSON.parse(plain.stdout).checkpoints[0].notes, ['weights from entry "model"; ignored: ema']);
    const picked = await runSoup(['inspect', file, '--key', 'ema', '--json']);
    assert.equal(picked.code, 0, picked.stderr);
    assert.deepEqual(JSON.parse(picked.stdout).checkpoints[0].tensors, [{ name: 'w', dtype: 'F32', shape: [2] }]);
  });

  it('says when ingredients differ only by the module. prefix of DataParallel', async () => {
    const runs = path.join(dir, 'prefixed');
    await mkdir(runs, { recursive: true });
    await writeFile(path.join(runs, 'a.pt'), simpleArchive());
    const p = new Pickle().proto(2).emptyDict().mark();
    pushTensor(p.unicode('module.weight'), { name: '', key: '0', numel: 6, shape: [2, 3] });
    pushTensor(p.unicode('module.bias'), { name: '', key: '1', numel: 2, shape: [2] });
    await writeFile(
      path.join(runs, 'b.pt'),
      torchArchive([], { '0': f32Bytes([0, 0, 0, 0, 0, 0]), '1': f32Bytes([0, 0]) }, { pickle: p.setItems().stop().bytes() }),
    );
    const result = await runSoup(['uniform', runs, '-o', path.join(dir, 'prefixed.safetensors')]);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: the tensor names differ only by a prefix: every name in ${path.join(runs, 'b.pt')} starts with "module." (added by DataParallel or DistributedDataParallel), ` +
        `which the names in ${path.join(runs, 'a.pt')} lack; save the state dict without it: {k.removeprefix("module."): v for k, v in state_dict.items()}\n`,
    );
  });

  it('runs a greedy soup of .pt ingredients with --eval-cmd, handing the command .pt candidates', async () => {
    const runs = path.join(dir, 'greedy-runs');
    await mkdir(runs, { recursive: true });
    for (const [name, value] of [
      ['a', 0.25],
      ['b', 0.75],
      ['c', 3],
    ] as const) {
      await writeFile(path.join(runs, `${name}.pt`), torchArchive([{ name: 'w', key: '0', numel: 1, shape: [1] }], { '0': f32Bytes([value]) }));
    }
    const scorer = path.join(dir, 'score.mjs');
    const seen = path.join(dir, 'seen.txt');
    await writeFile(
      scorer,
      `import { appendFileSync, readFileSync } from 'node:fs';
appendFileSync(${JSON.stringify(seen)}, process.argv[2] + '\\n');
const bytes = readFileSync(process.argv[2]);
// The first occurrence of the record name is its local header's: data follows the name and extra field.
const name = bytes.indexOf('archive/data/0');
console.log(1 - Math.abs(bytes.readFloatLE(name + bytes.readUInt16LE(name - 4) + bytes.readUInt16LE(name - 2)) - 0.5));
`,
    );
    const out = path.join(dir, 'greedy.safetensors');
    const result = await runSoup(['greedy', runs, '--eval-cmd', `node '${scorer}' {ckpt}`, '-o', out, '--json']);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).chosen, ['a', 'b']);
    const candidates = (await readFile(seen, 'utf8')).trim().split('\n');
    assert.ok(
      candidates.every((candidate) => candidate.endsWith('.pt')),
      candidates.join(', '),
    );
  });
});

describe('hostile PyTorch files', () => {
  const marker = path.join(dir, 'MARKER');
  const command = `touch '${marker}'`;
  const deep = new Pickle().proto(2);
  for (let i = 0; i < 200_000; i++) deep.emptyList();
  const cases: [string, Uint8Array, RegExp][] = [
    [
      'os.system (protocol 2)',
      simpleArchive({ pickle: callingPickle(2, 'os', 'system', command) }),
      /data\.pkl: refused global os\.system: it would run code when unpickled/,
    ],
    [
      'os.system (protocol 4)',
      simpleArchive({ pickle: callingPickle(4, 'os', 'system', command) }),
      /data\.pkl: refused global os\.system: it would run code when unpickled/,
    ],
    ['posix.system', simpleArchive({ pickle: callingPickle(2, 'posix', 'system', command) }), /data\.pkl: refused global posix\.system/],
    [
      'eval (protocol 2)',
      simpleArchive({ pickle: callingPickle(2, '__builtin__', 'eval', `__import__('os').system("${command}")`) }),
      /data\.pkl: refused global builtins\.eval/,
    ],
    [
      'exec (protocol 4)',
      simpleArchive({ pickle: callingPickle(4, 'builtins', 'exec', `import os; os.system("${command}")`) }),
      /data\.pkl: refused global builtins\.exec/,
    ],
    [
      'subprocess.Popen (protocol 2)',
      simpleArchive({ pickle: callingPickle(2, 'subprocess', 'Popen', command) }),
      /data\.pkl: refused global subprocess\.Popen/,
    ],
    [
      'subprocess.Popen (protocol 4)',
      simpleArchive({ pickle: callingPickle(4, 'subprocess', 'Popen', command) }),
      /data\.pkl: refused global subprocess\.Popen/,
    ],
    [
      'a storage shorter than it claims',
      torchArchive([{ name: 'w', key: '0', numel: 100, shape: [100] }], { '0': f32Bytes([1]) }),
      /tensor "w": its storage archive\/data\/0 holds 4 bytes but the pickle says 100 elements/,
    ],
    [
      'an offset outside the storage',
      torchArchive([{ name: 'w', key: '0', numel: 1, offset: 1, shape: [1] }], { '0': f32Bytes([1]) }),
      /tensor "w": view \(offset 1, size \[1\], stride \[1\]\) reaches element 1 of a storage of 1 elements/,
    ],
    [
      'a stride outside the storage',
      torchArchive([{ name: 'w', key: '0', numel: 2, shape: [2, 2], stride: [1, 1] }], { '0': f32Bytes([1, 2]) }),
      /tensor "w": view \(offset 0, size \[2, 2\], stride \[1, 1\]\) reaches element 2 of a storage of 2 elements/,
    ],
    [
      'a huge shape',
      torchArchive([{ name: 'w', key: '0', numel: 1, shape: [2 ** 31, 2 ** 31, 2 ** 31], stride: [0, 0, 0] }], { '0': f32Bytes([1]) }),
      /tensor "w": shape \[2147483648, 2147483648, 2147483648\] is too large/,
    ],
    ['a missing data.pkl', storedZip([{ name: 'archive/data/0', data: f32Bytes([1]) }]), /has no archive\/data\.pkl record: not a torch\.save archive/],
    ['a truncated zip', simpleArchive().subarray(0, 200), /not a PyTorch checkpoint: no zip end-of-directory record \(truncated, or not a torch\.save file\)/],
    [
      'random bytes',
      Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 251),
      /not a PyTorch checkpoint \(neither a torch\.save zip archive nor a legacy torch\.save file\)/,
    ],
    ['200,000-deep nesting', simpleArchive({ pickle: deep.stop().bytes() }), /data\.pkl: stack deeper than 100000 entries/],
  ];

  for (const [what, bytes, message] of cases) {
    it(`refuses ${what}: exit 2, one line, nothing written, nothing run`, async () => {
      const file = path.join(dir, 'hostile.pt');
      await writeFile(file, bytes);
      const inspected = await runSoup(['inspect', file]);
      assert.equal(inspected.code, 2, inspected.stderr);
      assert.equal(inspected.stdout, '');
      assert.equal(inspected.stderr.split('\n').length, 2, inspected.stderr);
      assert.match(inspected.stderr, new RegExp(`^soup: error: ${file.replace(/[.]/g, '\\.')}: ${message.source}`));
      const out = path.join(dir, 'out.safetensors');
      const souped = await runSoup(['uniform', file, path.join(fixtures, 'plain.pt'), '-o', out]);
      assert.equal(souped.code, 2, souped.stderr);
      assert.equal(existsSync(out), false);
      assert.deepEqual(
        (await readdir(dir)).filter((name) => name.startsWith('.out') || name === 'MARKER'),
        [],
      );
    });
  }

  it("would have run the command under Python's pickle, so the files above really are hostile", () => {
    const sandbox = path.join(dir, 'python-marker');
    const pickle = callingPickle(2, 'os', 'system', `touch '${sandbox}'`);
    execFileSync('/usr/bin/python3', ['-c', 'import pickle, sys; pickle.loads(sys.stdin.buffer.read())'], { input: pickle });
    assert.equal(existsSync(sandbox), true);
    assert.equal(existsSync(marker), false);
  });
});
