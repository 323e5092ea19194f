import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoupCapped } from '../helpers/cli.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';
import { cp } from 'node:fs/promises';
import { Pickle, f32Bytes, pushTensor, torchArchive } from '../helpers/torch.js';
import { deflateRawSync, crc32 } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { encodeIdxU8 } from '../../src/data/idx.js';
import { encodeNpy } from '../../src/data/npy.js';
import { lenField } from '../../src/checkpoint/onnx/protobuf.js';
import { FIXTURES, linearSpec, writeModel } from '../helpers/onnx.js';
import { readFile } from 'node:fs/promises';
import { gzipOf, repeatedDeflate, zipOfDeflated, type Deflated } from '../helpers/bombs.js';

const deflated = (bytes: Uint8Array): Deflated => ({ deflated: deflateRawSync(bytes), size: bytes.length, crc: crc32(bytes) >>> 0 });

/**
 * Small hostile files that once took gigabytes or hung: each runs under a memory cap and a time
 * limit, so a regression fails here instead of taking the machine down.
 */
const CAP_MIB = 700;
const dir = await tempDir('soup-hostile-');

describe('soup on hostile input', () => {
  it('refuses a pickle that applies set() and torch.Size() thousands of times to one memoized list, within the memory cap', async () => {
    const p = new Pickle().proto(2).emptyDict();
    p.unicode('junk').emptyList().put(0).mark();
    for (let i = 0; i < 100_000; i++) p.int(1);
    p.raw(0x65).emptyList().mark();
    p.global('__builtin__', 'set').put(1).get(0).tupleN(1).reduce();
    for (let i = 1; i < 15_000; i++) p.get(1).get(0).tupleN(1).reduce();
    p.raw(0x65).setItem();
    pushTensor(p.unicode('weight'), { name: 'weight', key: '0', numel: 2, shape: [2] })
      .setItem()
      .stop();
    const file = path.join(dir, 'amplified.pt');
    await writeFile(file, torchArchive([], { '0': f32Bytes([1, 2]) }, { pickle: p.bytes() }));
    const result = await runSoupCapped(['inspect', file], { capMiB: CAP_MIB, timeoutMs: 60_000 });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 2, result.stderr);
    assert.match(result.stderr, /^soup: error: .*amplified\.pt: .*builds more than 20000000 values \(a pickle that copies the same data over and over\)/);
  });

  it('refuses stride-0 views that expand a few bytes of storage into gigabytes of soup', async () => {
    const tensors = [0, 1, 2, 3].map((i) => ({ name: `w${i}`, key: '0', numel: 1, shape: [16384, 16383], stride: [0, 0] }));
    const file = path.join(dir, 'broadcast.pt');
    await writeFile(file, torchArchive(tensors, { '0': f32Bytes([1]) }));
    await writeFile(path.join(dir, 'broadcast-copy.pt'), torchArchive(tensors, { '0': f32Bytes([1]) }));
    const result = await runSoupCapped(['uniform', file, path.join(dir, 'broadcast-copy.pt'), '-o', path.join(dir, 'broadcast-soup.safetensors')], {
      capMiB: CAP_MIB,
      timeoutMs: 60_000,
    });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 2, result.stderr);
    assert.match(
      result.stderr,
      /broadcast\.pt: tensor "w0": view of shape \[16384, 16383\] repeats a storage of 1 elements into 1073676288 bytes; the file's broadcast views expand to more than the 67108864 bytes allowed/,
    );
  });

  it('reads a 600 KB .npz that inflates to 640 MB by rows from disk, not into memory', async () => {
    const samples = 160 * 1024;
    const x = repeatedDeflate(encodeNpy(new Float32Array(0), [samples, 1024]), new Uint8Array(4 * 1024 * 1024), samples / 1024);
    const file = path.join(dir, 'inflating.npz');
    await writeFile(file, zipOfDeflated({ 'x.npy': x, 'y.npy': deflated(encodeNpy(new Int32Array(samples), [samples])) }));
    const result = await runSoupCapped(['data', file, '--json'], { capMiB: CAP_MIB, timeoutMs: 120_000 });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 0, result.stderr);
    assert.equal(JSON.parse(result.stdout).n, samples);
  });

  it('refuses a gzipped IDX file that inflates past 256 MiB, within the memory cap', async () => {
    const folder = path.join(dir, 'idx-bomb');
    await mkdir(folder, { recursive: true });
    const images = repeatedDeflate(encodeIdxU8(new Uint8Array(0), [300 * 1024, 32, 32]), new Uint8Array(1024 * 1024), 300);
    await writeFile(path.join(folder, 'images-idx3-ubyte.gz'), gzipOf(images));
    await writeFile(path.join(folder, 'labels-idx1-ubyte'), encodeIdxU8(new Uint8Array(300 * 1024), [300 * 1024]));
    const result = await runSoupCapped(['data', folder], { capMiB: CAP_MIB, timeoutMs: 60_000 });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(
      result.stderr,
      `soup: error: ${path.join(folder, 'images-idx3-ubyte.gz')}: inflates to more than the 268435456 bytes soup reads from an IDX file\n`,
    );
  });

  it('refuses an ONNX model padded with 10 million unknown fields, within the memory cap', async () => {
    const base = await readFile(path.join(FIXTURES, 'onnx', 'lr1e-4-s1.onnx'));
    // Field 100, varint 1: three bytes each, after the model's own fields.
    const file = path.join(dir, 'padded.onnx');
    await writeFile(file, Buffer.concat([base, Buffer.alloc(30_000_000, Buffer.from([0xa0, 0x06, 0x01]))]));
    const result = await runSoupCapped(['eval', file, '--val', path.join(FIXTURES, 'data', 'test.npz')], { capMiB: CAP_MIB, timeoutMs: 60_000 });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 2, result.stderr);
    assert.equal(result.stderr, `soup: error: ${file}: is not an ONNX model soup reads: the model holds more than 1000000 fields (padded or hostile file)\n`);
  });

  it('makes a uniform soup of ONNX models with 150,000 value_info entries', async () => {
    const valueInfo = Array.from({ length: 150_000 }, (_, i) => lenField(13, lenField(1, `v${i}`)));
    const a = await writeModel(path.join(dir, 'info-a.onnx'), { ...linearSpec(1), extraGraphFields: valueInfo });
    const b = await writeModel(path.join(dir, 'info-b.onnx'), { ...linearSpec(2), extraGraphFields: valueInfo });
    const result = await runSoupCapped(['uniform', a, b, '-o', path.join(dir, 'info-soup.onnx'), '--json'], { capMiB: CAP_MIB, timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).chosen, ['info-a', 'info-b']);
  });

  it('refuses FIFOs named like an image, a dataset.json, a data file and a recipe at once, instead of blocking', async () => {
    const folder = path.join(dir, 'fifo-images');
    await mkdir(path.join(folder, 'a'), { recursive: true });
    await writeFile(path.join(folder, 'a', '1.png'), await readFile(path.join(FIXTURES, 'data', 'images', '0-tshirt', 'test-27.png')));
    execFileSync('mkfifo', [path.join(folder, 'a', 'x.png')]);
    const withJson = path.join(dir, 'fifo-json');
    await mkdir(withJson, { recursive: true });
    await writeFile(path.join(withJson, 'val.npz'), await readFile(path.join(FIXTURES, 'data', 'test.npz')));
    execFileSync('mkfifo', [path.join(withJson, 'dataset.json'), path.join(dir, 'fifo.npz'), path.join(dir, 'fifo.yml')]);
    const cases: [string[], string][] = [
      [['data', folder], `${path.join(folder, 'a', 'x.png')}: is not a regular file (a FIFO, device or folder named like an image)`],
      [
        ['data', path.join(withJson, 'val.npz')],
        `${path.join(withJson, 'dataset.json')}: is not a regular file (a FIFO, socket or device named like a data file)`,
      ],
      [['data', path.join(dir, 'fifo.npz')], `${path.join(dir, 'fifo.npz')}: is not a regular file (a FIFO, socket or device named like a data file)`],
      [
        ['merge', path.join(dir, 'fifo.yml'), '-o', path.join(dir, 'fifo-merge.safetensors')],
        `${path.join(dir, 'fifo.yml')}: is not a regular file (a FIFO, socket, device or folder named like a recipe)`,
      ],
    ];
    for (const [args, message] of cases) {
      const result = await runSoupCapped(args, { capMiB: CAP_MIB, timeoutMs: 20_000 });
      assert.equal(result.killed, undefined, `${args.join(' ')}: killed for ${result.killed}`);
      assert.equal(result.code, 2, result.stderr);
      assert.equal(result.stderr, `soup: error: ${message}\n`);
    }
  });

  it('prints names with newlines and escape sequences escaped, on one line each', async () => {
    const file = await writeSafetensorsFile(path.join(dir, 'names.safetensors'), {
      'evil\nsoup: error: forged\u001b[2J': { dtype: 'F32', shape: [1], values: [1] },
    });
    const result = await runSoupCapped(['inspect', file], { capMiB: CAP_MIB, timeoutMs: 30_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.ok(!/[\u0000-\u0009\u000b-\u001f]/.test(result.stdout), JSON.stringify(result.stdout));
    assert.match(result.stdout, /^ {2}evil\\nsoup: error: forged\\x1b\[2J +F32 +\[1\]$/m);
  });

  it('prints an error about a 20 MB value from a file as one line of at most about 2,000 characters', async () => {
    const folder = path.join(dir, 'huge-dtype');
    await cp(path.join(FIXTURES, 'ingredients', 'lr1e-4-s1'), folder, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(folder, 'model.json'), 'utf8'));
    manifest.weightsManifest[0].weights[0].dtype = `x\n${'y'.repeat(20_000_000)}`;
    await writeFile(path.join(folder, 'model.json'), JSON.stringify(manifest));
    const result = await runSoupCapped(['inspect', folder], { capMiB: CAP_MIB, timeoutMs: 30_000 });
    assert.equal(result.code, 2, result.stderr.slice(0, 500));
    assert.equal(result.stderr.split('\n').length, 2, 'one line and its newline');
    assert.ok(result.stderr.length < 2100, String(result.stderr.length));
    assert.match(
      result.stderr,
      /^soup: error: .*model\.json: tensor "[^"]+": dtype "x\\nyyy+\.\.\. \(\d+ characters cut\) \.\.\.y+" is not supported \(float32, int32 and bool are\)\n$/,
    );
  });

  it('summarizes 20 images cropped to 2048 x 2048 in bounded batches, not one batch of 1 GB of floats', async () => {
    const folder = path.join(dir, 'big-crop');
    await mkdir(path.join(folder, 'a'), { recursive: true });
    const png = await readFile(path.join(FIXTURES, 'data', 'images', '0-tshirt', 'test-27.png'));
    for (let i = 0; i < 20; i++) await writeFile(path.join(folder, 'a', `${i}.png`), png);
    await writeFile(path.join(folder, 'dataset.json'), JSON.stringify({ crop: 2048 }));
    const result = await runSoupCapped(['data', folder, '--json'], { capMiB: CAP_MIB, timeoutMs: 120_000 });
    assert.equal(result.killed, undefined, `killed for ${result.killed} at ${result.peakMiB} MiB`);
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(JSON.parse(result.stdout).sampleShape.slice(0, 2), [2048, 2048]);
  });

  it('inspects a legacy torch.save file holding a list of a million numbers beside its tensors', async () => {
    const file = path.join(dir, 'big-list.pt');
    execFileSync('/usr/bin/python3', [
      '-c',
      "import sys, torch\ntorch.save({'w': torch.ones(2), 'junk': list(range(1_000_000))}, sys.argv[1], _use_new_zipfile_serialization=False)",
      file,
    ]);
    const result = await runSoupCapped(['inspect', file, '--json'], { capMiB: CAP_MIB, timeoutMs: 60_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /"w"/);
  });
});
