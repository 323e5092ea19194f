import assert from 'node:assert/strict';
import { cp, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { datasetFromArrays, loadDataset } from '../../src/data/dataset.js';
import { rawPixelsWarning } from '../../src/data/raw-pixels.js';
import { TEST_CACHE_HOME } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';

const images = new URL('../../../fixtures/data/images', import.meta.url).pathname;
const cacheDir = path.join(TEST_CACHE_HOME, 'raw-pixels');

describe('rawPixelsWarning', () => {
  it('says nothing for an image folder whose dataset.json or flags set the values, nor for arrays used as stored', async () => {
    assert.equal(rawPixelsWarning(await loadDataset(images, {}, { cacheDir })), undefined);
    assert.equal(rawPixelsWarning(await loadDataset(images, { scale: 1, resize: 28, crop: 28 }, { cacheDir })), undefined);
    assert.equal(rawPixelsWarning(datasetFromArrays({ name: 'x', x: [0, 255], y: Int32Array.from([0, 1]), sampleShape: [1] })), undefined);
  });

  it('names the data, what the model is fed and the flags that change it when nothing sets the values', async () => {
    // A dataset.json that only sizes the images leaves the values as decoded.
    const folder = path.join(await tempDir(), 'sized-only');
    await cp(images, folder, { recursive: true });
    await writeFile(path.join(folder, 'dataset.json'), JSON.stringify({ resize: 28, crop: 28 }));
    assert.equal(
      rawPixelsWarning(await loadDataset(folder, { channels: 'bgr' }, { cacheDir })),
      `${folder}: the model is fed raw pixel values 0-255 (28x28x3, BGR), as no preprocessing flag and no dataset.json says otherwise; ` +
        `--scale 1/255 feeds 0-1, --preprocess imagenet or clip normalises as those models expect, --mean/--std set your own, or write them in ${path.join(folder, 'dataset.json')}`,
    );
  });
});
