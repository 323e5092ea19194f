import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compareNatural } from '../src/natural-order.js';

describe('natural name order', () => {
  it('orders numbers in names by value: checkpoint-500 before checkpoint-1000, run-2 before run-10', () => {
    assert.deepEqual(['checkpoint-1500', 'checkpoint-1000', 'checkpoint-500'].sort(compareNatural), ['checkpoint-500', 'checkpoint-1000', 'checkpoint-1500']);
    assert.deepEqual(['run-10', 'run-2', 'run-1'].sort(compareNatural), ['run-1', 'run-2', 'run-10']);
  });

  it('compares text by code unit, so upper case sorts first, as it does in a plain sort', () => {
    assert.deepEqual(['b', 'B', 'a10', 'a9b', 'a9'].sort(compareNatural), ['B', 'a9', 'a9b', 'a10', 'b']);
  });

  it('orders names that differ only in leading zeros the same way every time, and digit runs longer than a double holds', () => {
    assert.deepEqual(['run-1', 'run-01', 'run-001'].sort(compareNatural), ['run-001', 'run-01', 'run-1']);
    assert.ok(compareNatural('s123456789012345678901', 's123456789012345678900') > 0);
    assert.equal(compareNatural('same', 'same'), 0);
  });
});
