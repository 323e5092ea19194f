import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { datasetFromArrays } from '../../src/data/dataset.js';
import { fitToInput } from '../../src/data/layout.js';
import { PRESETS, channelAffine, cropOrigin, describePreprocessing, parseChannelValues, resizedSize, resolvePreprocessing } from '../../src/data/preprocess.js';
import { InputError, UsageError } from '../../src/errors.js';

describe('preprocessing steps', () => {
  it('resizes the shorter side as torchvision does, truncating the longer one', () => {
    assert.deepEqual(resizedSize(500, 375, 256), { width: 341, height: 256 });
    assert.deepEqual(resizedSize(375, 500, 256), { width: 256, height: 341 });
    assert.deepEqual(resizedSize(300, 300, 224), { width: 224, height: 224 });
  });

  it("center-crops at torchvision's offsets: Python rounding of halves to even, padding shorter sides", () => {
    assert.deepEqual(cropOrigin(341, 256, 224), { left: 58, top: 16 }, '(341 - 224) / 2 = 58.5 rounds to 58');
    assert.deepEqual(cropOrigin(227, 225, 224), { left: 2, top: 0 }, '1.5 rounds to 2, 0.5 to 0');
    assert.deepEqual(cropOrigin(5, 2, 8), { left: -1, top: -3 }, 'padding (8 - 5) // 2 = 1 before, 2 after');
  });

  it('computes ((x * scale + offset) - mean[c]) / std[c] per channel', () => {
    const affine = channelAffine({ scale: 1 / 255, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] }, 3, 'data');
    assert.equal(affine.apply(255, 0), (1 - 0.485) / 0.229);
    assert.equal(affine.apply(0, 2), -0.406 / 0.225);
    assert.equal(channelAffine({ scale: 2, offset: 1 }, 1, 'data').apply(10, 0), 21);
    assert.equal(channelAffine({}, 3, 'data').identity, true);
  });

  it('refuses a mean with as many values as neither the channels nor one', () => {
    assert.throws(
      () => channelAffine({ mean: [0.5, 0.5] }, 3, 'val'),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.equal(error.message, 'val: mean has 2 values, but the samples have 3 channels');
        return true;
      },
    );
  });

  it("layers dataset.json's preset, its keys, the --preprocess preset and single flags, in that order", () => {
    assert.deepEqual(resolvePreprocessing({}, { preprocess: 'imagenet' }), { preprocess: 'imagenet', ...PRESETS.imagenet });
    assert.deepEqual(resolvePreprocessing({ preprocess: 'clip', crop: 200 }, {}), { preprocess: 'clip', ...PRESETS.clip, crop: 200 });
    const mixed = resolvePreprocessing({ scale: 0.5, layout: 'nchw' }, { preprocess: 'imagenet', crop: 192, channels: 'bgr' });
    assert.equal(mixed.scale, 1 / 255, 'the preset from a flag overrides dataset.json');
    assert.equal(mixed.layout, 'nchw', 'keys the preset does not set stay');
    assert.equal(mixed.crop, 192);
    assert.equal(mixed.channels, 'bgr');
    assert.equal(mixed.resize, 256);
    assert.deepEqual(resolvePreprocessing({ scale: 0.5, offset: 1 }, { scale: 2 }), { scale: 2, offset: 1 });
  });

  it('has the presets of the issue, to the digit', () => {
    assert.deepEqual(PRESETS.imagenet, {
      resize: 256,
      interpolation: 'bilinear',
      crop: 224,
      scale: 1 / 255,
      mean: [0.485, 0.456, 0.406],
      std: [0.229, 0.224, 0.225],
      channels: 'rgb',
    });
    assert.deepEqual(PRESETS.clip.mean, [0.48145466, 0.4578275, 0.40821073]);
    assert.deepEqual(PRESETS.clip.std, [0.26862954, 0.26130258, 0.27577711]);
    assert.equal(PRESETS.clip.interpolation, 'bicubic');
    assert.equal(
      describePreprocessing(resolvePreprocessing({}, { preprocess: 'clip' })),
      'preset clip, rgb, resize 224 (bicubic), crop 224, scale 0.003922, mean [0.48145466, 0.4578275, 0.40821073], std [0.26862954, 0.26130258, 0.27577711]',
    );
  });

  it('parses --mean and --std as comma-separated numbers', () => {
    assert.deepEqual(parseChannelValues('0.485, 0.456,0.406', '--mean'), [0.485, 0.456, 0.406]);
    assert.throws(() => parseChannelValues('0.5,x', '--std'), /--std: "0.5,x" is not 1 to 4 numbers separated by commas/);
  });
});

describe('layout from the model', () => {
  const hwc = { shape: [32, 32, 3], layout: 'hwc' as const };

  it('feeds [N, 3, H, W] as NCHW and [N, H, W, 3] as NHWC, transposing channel-last samples for NCHW', () => {
    assert.deepEqual(fitToInput(hwc, [3, 32, 32]), { shape: [3, 32, 32], layout: 'nchw', transpose: 'hwc-to-chw' });
    assert.deepEqual(fitToInput(hwc, [32, 32, 3]), { shape: [32, 32, 3], layout: 'nhwc', transpose: 'none' });
    assert.deepEqual(fitToInput(hwc, [-1, -1, 3]), { shape: [32, 32, 3], layout: 'nhwc', transpose: 'none' }, 'unknown height and width come from the data');
    assert.deepEqual(fitToInput({ shape: [3, 8, 8], layout: 'chw' }, [8, 8, 3]), { shape: [8, 8, 3], layout: 'nhwc', transpose: 'chw-to-hwc' });
    assert.deepEqual(fitToInput({ shape: [28, 28], layout: 'hwc' }, [1, 28, 28]), { shape: [1, 28, 28], layout: 'nchw', transpose: 'none' });
  });

  it('reshapes by element count only for flat inputs', () => {
    assert.deepEqual(fitToInput(hwc, [3072]), { shape: [3072], layout: 'flat', transpose: 'none' });
    assert.deepEqual(fitToInput(hwc, [3072], 'nchw'), { shape: [3072], layout: 'flat', transpose: 'hwc-to-chw' });
    assert.deepEqual(fitToInput({ shape: [28, 28], layout: 'hwc' }, [28, 28]), { shape: [28, 28], layout: 'as stored', transpose: 'none' });
    assert.throws(() => fitToInput({ shape: [784], layout: 'none' }, [28, 28, 1]), {
      message: 'samples have shape [784], the model expects [N, 28, 28, 1]: the samples are not images with a known channel axis',
    });
    assert.throws(() => fitToInput({ shape: [16, 16], layout: 'hwc' }, [8, 32]), {
      message: 'samples have shape [16, 16], the model expects [N, 8, 32]: only a flat input [N, K] takes samples reshaped by element count',
    });
  });

  it('names the shapes that disagree', () => {
    assert.throws(() => fitToInput(hwc, [3, 24, 24]), {
      message: 'samples have shape [32, 32, 3] (HWC), the model expects [N, 3, 24, 24]: 32x32 pixels vs 24x24',
    });
    assert.throws(() => fitToInput({ shape: [28, 28], layout: 'hwc' }, [28, 28, 3]), {
      message: 'samples have shape [28, 28], the model expects [N, 28, 28, 3]: 1 channels vs 3',
    });
    assert.throws(() => fitToInput(hwc, [32, 32, 3], 'nchw'), {
      message: "samples have shape [32, 32, 3] (HWC), the model expects [N, 32, 32, 3]: the preprocessing asks for NCHW, the model's input is NHWC",
    });
  });

  it("asks for --layout when the model's shape is ambiguous, and follows it", () => {
    const cube = { shape: [3, 3, 3], layout: 'hwc' as const };
    assert.throws(
      () => fitToInput(cube, [3, 3, 3]),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.equal(error.message, 'samples have shape [3, 3, 3] (HWC), the model expects [N, 3, 3, 3]: its layout is ambiguous');
        assert.equal(error.hint, 'say which with --layout nchw or --layout nhwc');
        return true;
      },
    );
    assert.equal(fitToInput(cube, [3, 3, 3], 'nchw').transpose, 'hwc-to-chw');
  });

  it('gives NCHW batches that are exact transposes of the NHWC ones, with the value steps applied per channel', async () => {
    // Two 2x2 RGB samples; value = 100 * sample + 10 * pixel + channel.
    const x = Array.from({ length: 2 * 4 * 3 }, (_, i) => 100 * Math.floor(i / 12) + 10 * Math.floor((i % 12) / 3) + (i % 3));
    const dataset = datasetFromArrays({
      name: 'tiny',
      x,
      y: Int32Array.from([0, 1]),
      sampleShape: [2, 2, 3],
      preprocessing: { scale: 0.5, mean: [0, 1, 2], std: [1, 2, 4] },
    });
    const nhwc = await dataset.read(0, 2, dataset.fitTo([2, 2, 3]));
    const nchw = await dataset.read(0, 2, dataset.fitTo([3, 2, 2]));
    const expected = (s: number, p: number, c: number) => Math.fround((0.5 * (100 * s + 10 * p + c) - c) / [1, 2, 4][c]!);
    for (let s = 0; s < 2; s++) {
      for (let p = 0; p < 4; p++) {
        for (let c = 0; c < 3; c++) {
          assert.equal(nhwc[s * 12 + p * 3 + c], expected(s, p, c));
          assert.equal(nchw[s * 12 + c * 4 + p], expected(s, p, c));
        }
      }
    }
    assert.deepEqual([...(await dataset.read(1, 1, dataset.fitTo([3, 2, 2])))], [...nchw.subarray(12)], 'a batch from the middle is laid out the same');
  });

  it('reports a layout mismatch as a problem of the data set, naming it', () => {
    const dataset = datasetFromArrays({ name: 'val.npz', x: new Float32Array(784), y: Int32Array.from([0]), sampleShape: [784] });
    assert.throws(
      () => dataset.fitTo([28, 28, 1]),
      (error: unknown) => {
        assert.ok(error instanceof InputError);
        assert.equal(
          error.message,
          'val.npz: samples have shape [784], the model expects [N, 28, 28, 1]: the samples are not images with a known channel axis',
        );
        assert.equal(error.hint, 'store x as [n, H, W, C] or [n, C, H, W] with 1 or 3 channels');
        return true;
      },
    );
  });
});
