/**
 * soup's methods against numbers mergekit's own method code computed in float64
 * (scripts/mergekit-reference.py writes fixtures/mergekit/cases.json).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import type { TensorInputs } from '../../../../src/soup/merge/methods/method.js';
import { LayerIndex, resolveParameters, type ParameterValue } from '../../../../src/soup/merge/methods/parameters.js';
import { METHOD_NAMES, findMethod } from '../../../../src/soup/merge/methods/registry.js';

interface Case {
  method: string;
  note: string;
  tensor: string;
  shape: number[];
  seed: number;
  base: number[] | null;
  models: number[][];
  names: string[];
  global: Record<string, ParameterValue>;
  modelParameters: Record<string, ParameterValue>[];
  expected: number[];
}

const file = fileURLToPath(new URL('../../../../../fixtures/mergekit/cases.json', import.meta.url));
const cases = (JSON.parse(readFileSync(file, 'utf8')) as { cases: Case[] }).cases;

/** The largest |soup - mergekit| over a case's entries, each relative to max(1, |mergekit|). */
function largestDifference(entry: Case): number {
  const method = findMethod(entry.method)!;
  const resolved = resolveParameters(method.parameters, entry.global, entry.modelParameters, entry.tensor, new LayerIndex([entry.tensor]));
  const inputs: TensorInputs = {
    tensor: { name: entry.tensor, shape: entry.shape, dtype: 'F64', storedBytes: 0 },
    base: entry.base === null ? undefined : Float64Array.from(entry.base),
    models: entry.models.map((values) => Float64Array.from(values)),
    names: entry.names,
    params: resolved.models,
    global: resolved.global,
    seed: entry.seed,
  };
  const merged = method.mergeTensor(inputs);
  assert.equal(merged.length, entry.expected.length);
  return entry.expected.reduce((worst, value, i) => Math.max(worst, Math.abs(merged[i]! - value) / Math.max(1, Math.abs(value))), 0);
}

describe("merge methods against mergekit's code", () => {
  const methods = [...new Set(cases.map((entry) => entry.method))];

  it('covers every method soup has', () => {
    assert.deepEqual([...methods].sort(), [...METHOD_NAMES].sort());
  });

  for (const method of methods) {
    it(`${method} gives mergekit's numbers to within 1e-13`, () => {
      const worst = Math.max(...cases.filter((entry) => entry.method === method).map(largestDifference));
      assert.ok(worst <= 1e-13, `largest difference ${worst}`);
    });
  }
});
