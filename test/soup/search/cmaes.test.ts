import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Cmaes, minimize, symmetricEigen } from '../../../src/soup/search/cmaes.js';

const sphere = (x: Float64Array): number => x.reduce((s, v) => s + v * v, 0);
/** The ellipsoid of condition 1e6 (Hansen & Ostermeier 2001's f_elli). */
const ellipsoid = (x: Float64Array): number => x.reduce((s, v, i) => s + 1e6 ** (i / (x.length - 1)) * v * v, 0);
const rosenbrock = (x: Float64Array): number => {
  let s = 0;
  for (let i = 0; i < x.length - 1; i++) s += 100 * (x[i]! ** 2 - x[i + 1]!) ** 2 + (x[i]! - 1) ** 2;
  return s;
};

/**
 * f_stop = 1e-10 from x0 = 1, sigma0 = 1 (sphere, ellipsoid of condition 1e6) and x0 = 0, sigma0 = 0.1
 * (Rosenbrock), the test settings of Hansen & Ostermeier (2001, Evolutionary Computation 9(2)) and
 * Hansen, Mueller & Koumoutsakos (2003, Evolutionary Computation 11(1)), with the default population.
 * Budgets: this implementation's counts with seed 1 plus about a third (at 10-D it needs 1,750, 6,100
 * and 6,550 evaluations), which keeps them within the counts those papers plot for CMA-ES (roughly
 * linear in n on the sphere, about quadratic on the other two). The 40-D ellipsoid and Rosenbrock
 * runs (about 68,000 and 79,000 evaluations, 17 s each here) are in `npm run bench`, not the tests.
 */
const CASES: { name: string; f: (x: Float64Array) => number; n: number; x0: number; sigma: number; budget: number }[] = [
  { name: 'sphere', f: sphere, n: 2, x0: 1, sigma: 1, budget: 600 },
  { name: 'sphere', f: sphere, n: 10, x0: 1, sigma: 1, budget: 2_500 },
  { name: 'sphere', f: sphere, n: 40, x0: 1, sigma: 1, budget: 8_000 },
  { name: 'ellipsoid', f: ellipsoid, n: 2, x0: 1, sigma: 1, budget: 1_200 },
  { name: 'ellipsoid', f: ellipsoid, n: 10, x0: 1, sigma: 1, budget: 8_000 },
  { name: 'ellipsoid', f: ellipsoid, n: 20, x0: 1, sigma: 1, budget: 25_000 },
  { name: 'Rosenbrock', f: rosenbrock, n: 2, x0: 0, sigma: 0.1, budget: 1_500 },
  { name: 'Rosenbrock', f: rosenbrock, n: 10, x0: 0, sigma: 0.1, budget: 9_000 },
  { name: 'Rosenbrock', f: rosenbrock, n: 20, x0: 0, sigma: 0.1, budget: 28_000 },
];

describe('CMA-ES', () => {
  for (const { name, f, n, x0, sigma, budget } of CASES) {
    it(`reaches 1e-10 on the ${n}-D ${name} function within ${budget} evaluations`, () => {
      const result = minimize(f, { mean: new Array(n).fill(x0), sigma, seed: 1, target: 1e-10, maxEvaluations: budget });
      assert.ok(result.value < 1e-10, `f = ${result.value} after ${result.evaluations} evaluations`);
      assert.ok(result.evaluations <= budget);
    });
  }

  it('asks for the same candidates with the same seed, and for others with another seed', () => {
    const first = new Cmaes({ mean: [0, 0, 0], sigma: 0.5, seed: 7 });
    const again = new Cmaes({ mean: [0, 0, 0], sigma: 0.5, seed: 7 });
    const other = new Cmaes({ mean: [0, 0, 0], sigma: 0.5, seed: 8 });
    for (let generation = 0; generation < 5; generation++) {
      const a = first.ask();
      const b = again.ask();
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, other.ask());
      first.tell(a.map(sphere));
      again.tell(b.map(sphere));
      other.tell(a.map(sphere));
    }
    assert.deepEqual(first.mean, again.mean);
  });

  it('uses the default population 4 + floor(3 ln n) and keeps the better half', () => {
    const es = new Cmaes({ mean: new Array(10).fill(0), sigma: 1 });
    assert.equal(es.population, 10);
    assert.equal(es.mu, 5);
    assert.equal(new Cmaes({ mean: [0, 0], sigma: 1, population: 16 }).population, 16);
  });

  it('ranks NaN values last, so a candidate that could not be scored never moves the mean toward it', () => {
    const es = new Cmaes({ mean: [0], sigma: 1, population: 4, seed: 3 });
    const candidates = es.ask();
    const nan = candidates.findIndex((x) => x[0]! > 0);
    es.tell(candidates.map((x, k) => (k === nan ? Number.NaN : Math.abs(x[0]!))));
    const rest = candidates.filter((_, k) => k !== nan).map((x) => x[0]!);
    const mean = es.mean[0]!;
    assert.ok(mean >= Math.min(...rest) && mean <= Math.max(...rest), `mean ${mean} within ${rest}`);
  });

  it('refuses a tell() whose values do not match the candidates asked for', () => {
    const es = new Cmaes({ mean: [0, 0], sigma: 1, population: 4 });
    es.ask();
    assert.throws(() => es.tell([1, 2]), /tell\(\) wants 4 values, got 2/);
  });

  it('decomposes a symmetric matrix into eigenvalues and orthonormal eigenvectors that rebuild it', () => {
    const m = [Float64Array.of(4, 1, 2), Float64Array.of(1, 3, 0.5), Float64Array.of(2, 0.5, 5)];
    const { values, vectors } = symmetricEigen(m);
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 3; j++) {
        let rebuilt = 0;
        let dot = 0;
        for (let k = 0; k < 3; k++) {
          rebuilt += vectors[i]![k]! * values[k]! * vectors[j]![k]!;
          dot += vectors[k]![i]! * vectors[k]![j]!;
        }
        assert.ok(Math.abs(rebuilt - m[i]![j]!) < 1e-12, `A[${i}][${j}]`);
        assert.ok(Math.abs(dot - (i === j ? 1 : 0)) < 1e-12, `B^T B [${i}][${j}]`);
      }
    }
  });
});
