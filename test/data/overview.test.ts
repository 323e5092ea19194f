import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadDataset } from '../../src/data/dataset.js';
import { overviewDataset } from '../../src/data/overview.js';

const val = path.join(new URL('../../../fixtures/', import.meta.url).pathname, 'data', 'val');

describe('overviewDataset', () => {
  it('gives the classes, shapes and value range a model would be fed, without the CLI', async () => {
    const doc = await overviewDataset(await loadDataset(val, { layout: 'nhwc' }));
    assert.deepEqual(Object.keys(doc), [
      'data',
      'name',
      'format',
      'n',
      'classes',
      'labelCounts',
      'sampleShape',
      'sampleLayout',
      'layout',
      'inputShapes',
      'preprocessing',
      'channels',
      'streamed',
      'cache',
    ]);
    assert.equal(doc.format, 'idx');
    assert.equal(doc.n, 2000);
    assert.deepEqual(doc.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    assert.equal(
      doc.labelCounts.reduce((a, b) => a + b, 0),
      2000,
    );
    assert.deepEqual(doc.sampleShape, [28, 28]);
    assert.equal(doc.layout, 'nhwc');
    assert.deepEqual(doc.inputShapes, { nchw: ['N', 1, 28, 28], nhwc: ['N', 28, 28, 1] });
    assert.deepEqual(doc.channels, [{ min: 0, max: 1, mean: 0.285691 }]);
    assert.equal(doc.cache, null);
  });
});
