import assert from 'node:assert/strict';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';

const fixtures = new URL('../../../fixtures/', import.meta.url).pathname;
const images = path.join(fixtures, 'data', 'images');
const conv = path.join(fixtures, 'conv', 'nhwc');
const expected = JSON.parse(await readFile(path.join(fixtures, 'conv', 'expected.json'), 'utf8')) as { accuracy: number; predictions: number[] };
const dir = await tempDir();

describe('soup data', () => {
  it('shows what an evaluator would see, and decodes an image folder only on the first run', async () => {
    const cache = await tempDir('soup-cache-');
    const first = await runSoup(['data', images, '--json'], { env: { XDG_CACHE_HOME: cache } });
    assert.equal(first.code, 0, first.stderr);
    const doc = JSON.parse(first.stdout);
    assert.equal(doc.format, 'images');
    assert.equal(doc.n, 30);
    assert.deepEqual(doc.classes, ['0-tshirt', '1-trouser', '2-pullover', '3-dress', '4-coat', '5-sandal', '6-shirt', '7-sneaker', '8-bag', '9-boot']);
    assert.deepEqual(doc.labelCounts, new Array(10).fill(3));
    assert.deepEqual(doc.sampleShape, [28, 28, 3]);
    assert.equal(doc.sampleLayout, 'hwc');
    assert.deepEqual(doc.inputShapes, { nchw: ['N', 3, 28, 28], nhwc: ['N', 28, 28, 3] });
    assert.deepEqual(doc.preprocessing, { resize: 28, crop: 28, scale: 1 / 255 });
    assert.equal(doc.channels.length, 3);
    for (const channel of doc.channels) assert.ok(channel.min === 0 && channel.max <= 1 && channel.max > 0.5, JSON.stringify(channel));
    assert.equal(doc.cache.state, 'built');
    assert.equal(doc.cache.bytes, 30 * 28 * 28 * 3);
    assert.ok(doc.cache.file.startsWith(path.join(cache, 'model-soup', 'data')), doc.cache.file);
    const second = await runSoup(['data', images], { env: { XDG_CACHE_HOME: cache } });
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, /samples +30\n/);
    assert.match(second.stdout, /sample shape +\[28, 28, 3\] HWC\n/);
    assert.match(second.stdout, /model input +from the model: NCHW \[N, 3, 28, 28\] or NHWC \[N, 28, 28, 3\]\n/);
    assert.match(second.stdout, /preprocessing +resize 28 \(bilinear\), crop 28, scale 0.003922\n/);
    assert.match(second.stdout, /channel 2 +0 to 1, mean /);
    assert.match(second.stdout, /cache +7\d\.\d kB, up to date \(/);
  });

  it('applies a preset, and a flag overrides one of its keys', async () => {
    const result = await runSoup(['data', images, '--preprocess', 'clip', '--crop', '200', '--layout', 'nchw', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.deepEqual(doc.sampleShape, [200, 200, 3]);
    assert.equal(doc.layout, 'nchw');
    assert.equal(doc.preprocessing.interpolation, 'bicubic');
    assert.deepEqual(doc.preprocessing.std, [0.26862954, 0.26130258, 0.27577711]);
    // Black padding is the smallest value: (0 - mean) / std per channel.
    assert.equal(doc.channels[0].min, Number((-0.48145466 / 0.26862954).toPrecision(6)));
  });

  it('exits 2 naming a corrupt JPEG', async () => {
    const folder = path.join(dir, 'broken');
    await cp(images, folder, { recursive: true });
    await writeFile(path.join(folder, '3-dress', 'broken.jpg'), Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46]));
    const result = await runSoup(['data', folder]);
    assert.equal(result.code, 2);
    assert.equal(result.stdout, '');
    assert.match(result.stderr, /^soup: error: .*broken\/3-dress\/broken\.jpg: cannot decode image: .+\n$/);
  });

  it('lists the command and its preprocessing flags in --help', async () => {
    const result = await runSoup(['data', '--help']);
    assert.equal(result.code, 0);
    for (const flag of [
      '--preprocess <preset>',
      '--resize <n>',
      '--crop <n>',
      '--mean <values>',
      '--std <values>',
      '--channels <order>',
      '--layout <layout>',
      'soup data ./val-images --preprocess imagenet',
    ]) {
      assert.ok(result.stdout.includes(flag), flag);
    }
  });
});

describe('image data in evaluation', () => {
  it('scores the NHWC conv model on the fixture image folder as the fixture script measured', async () => {
    const result = await runSoup(['eval', conv, '--val', images, '--backend', 'wasm', '--json']);
    assert.equal(result.code, 0, result.stderr);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.n, 30);
    assert.equal(doc.metrics.accuracy, expected.accuracy);
  });

  it('scores the NCHW twin (the same weights exported from PyTorch to ONNX) exactly as the NHWC TF.js model', async () => {
    const [nhwc, nchw] = await Promise.all([
      runSoup(['eval', conv, '--val', images, '--backend', 'wasm', '--json']),
      runSoup(['eval', path.join(fixtures, 'conv', 'nchw.onnx'), '--val', images, '--json']),
    ]);
    assert.equal(nchw.code, 0, nchw.stderr);
    const [tfjs, onnx] = [JSON.parse(nhwc.stdout), JSON.parse(nchw.stdout)];
    assert.match(onnx.backend, /^onnxruntime \(cpu, \d+ threads?\)$/);
    assert.equal(onnx.metrics.accuracy, expected.accuracy);
    // The loss depends on every output of every sample: equal losses mean the pixels reached both models in their own layout.
    for (const metric of ['loss', 'margin', 'top5'] as const)
      assert.ok(Math.abs(onnx.metrics[metric] - tfjs.metrics[metric]) < 1e-5, `${metric}: ${onnx.metrics[metric]} vs ${tfjs.metrics[metric]}`);
  });

  it('refuses a layout the model does not have, naming both shapes', async () => {
    const result = await runSoup(['eval', conv, '--val', images, '--backend', 'wasm', '--layout', 'nchw']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${images}: samples have shape [28, 28, 3] (HWC), the model expects [N, 28, 28, 3]: the preprocessing asks for NCHW, the model's input is NHWC\n`,
    );
  });

  it('warns what the model is fed when an image folder has no dataset.json and no value flags, and takes --scale 1/255', async () => {
    const raw = path.join(dir, 'raw-images');
    await cp(images, raw, { recursive: true });
    await rm(path.join(raw, 'dataset.json'));
    const onnx = path.join(fixtures, 'conv', 'nchw.onnx');
    const fed = await runSoup(['eval', onnx, '--val', raw, '--resize', '28', '--crop', '28', '--json']);
    assert.equal(fed.code, 0, fed.stderr);
    assert.equal(
      fed.stderr,
      `soup: warning: ${raw}: the model is fed raw pixel values 0-255 (28x28x3, RGB), as no preprocessing flag and no dataset.json says otherwise; ` +
        `--scale 1/255 feeds 0-1, --preprocess imagenet or clip normalises as those models expect, --mean/--std set your own, or write them in ${path.join(raw, 'dataset.json')}\n`,
    );
    assert.ok(JSON.parse(fed.stdout).metrics.accuracy < expected.accuracy);
    const scaled = await runSoup(['eval', onnx, '--val', raw, '--resize', '28', '--crop', '28', '--scale', '1/255', '--json']);
    assert.equal(scaled.code, 0, scaled.stderr);
    assert.equal(scaled.stderr, '');
    assert.equal(JSON.parse(scaled.stdout).metrics.accuracy, expected.accuracy);
    const zero = await runSoup(['eval', onnx, '--val', raw, '--scale', '1/0']);
    assert.equal(zero.code, 2);
    assert.equal(zero.stderr, 'soup: error: --scale: "1/0" is not a number or a fraction such as 1/255\n');
  });

  it('refuses images whose size does not fit the model, saying how to resize', async () => {
    const result = await runSoup(['eval', conv, '--val', images, '--backend', 'wasm', '--crop', '24']);
    assert.equal(result.code, 2);
    assert.equal(
      result.stderr,
      `soup: error: ${images}: samples have shape [24, 24, 3] (HWC), the model expects [N, 28, 28, 3]: 24x24 pixels vs 28x28 (resize with --resize and --crop (or --preprocess imagenet))\n`,
    );
  });
});
