/**
 * CMA-ES, the covariance matrix adaptation evolution strategy, as Hansen's tutorial states it
 * ("The CMA Evolution Strategy: A Tutorial", arXiv:1604.00772, Table 1 and Fig. 7) and his purecma.py
 * runs it: (mu/mu_w, lambda) selection, cumulative step-size adaptation, rank-one and rank-mu
 * covariance updates, the eigendecomposition renewed lazily. It minimises. No gradient is asked for:
 * only a ranking of each generation's candidates, which is why it searches soups scored by any
 * evaluator. Every random number comes from one seeded generator, so a seed fixes every candidate.
 */
import { seededRandom } from '../../random.js';

export interface CmaesOptions {
  /** Starting mean of the search distribution. */
  mean: readonly number[];
  /** Starting step size (the search distribution's standard deviation in every coordinate). */
  sigma: number;
  /** Candidates per generation (lambda); default 4 + floor(3 ln n). */
  population?: number;
  seed?: number;
}

/** Standard normal numbers from a seeded uniform generator (Box-Muller; both values used). */
function gaussian(uniform: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const value = spare;
      spare = undefined;
      return value;
    }
    // 1 - u keeps the logarithm's argument in (0, 1].
    const radius = Math.sqrt(-2 * Math.log(1 - uniform()));
    const angle = 2 * Math.PI * uniform();
    spare = radius * Math.sin(angle);
    return radius * Math.cos(angle);
  };
}

/**
 * Eigenvalues and eigenvectors of a symmetric matrix (cyclic Jacobi rotations): returns the values
 * and the vectors as columns of a row-major n x n array. Exact enough for CMA's covariance, and
 * dependency-free; the dimensions searched here are small (tens).
 */
export function symmetricEigen(matrix: readonly Float64Array[]): { values: Float64Array; vectors: Float64Array[] } {
  const n = matrix.length;
  const a = matrix.map((row) => Float64Array.from(row));
  const v = Array.from({ length: n }, (_, i) => {
    const row = new Float64Array(n);
    row[i] = 1;
    return row;
  });
  let scale = 0;
  for (let p = 0; p < n; p++) for (let q = 0; q < n; q++) scale += a[p]![q]! ** 2;
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p]![q]! ** 2;
    // Relative to the matrix's size: covariances shrink by many orders of magnitude as a run converges.
    if (off <= 1e-26 * scale) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p]![q]!;
        if (apq * apq <= 1e-34 * scale) continue;
        const theta = (a[q]![q]! - a[p]![p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k]![p]!;
          const akq = a[k]![q]!;
          a[k]![p] = c * akp - s * akq;
          a[k]![q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p]![k]!;
          const aqk = a[q]![k]!;
          a[p]![k] = c * apk - s * aqk;
          a[q]![k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k]![p]!;
          const vkq = v[k]![q]!;
          v[k]![p] = c * vkp - s * vkq;
          v[k]![q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from(a, (row, i) => row[i]!), vectors: v };
}

/** The ask-and-tell optimiser: ask() gives a generation's candidates, tell() their objective values (lower is better). */
export class Cmaes {
  readonly dimension: number;
  readonly population: number;
  readonly mu: number;
  private readonly weights: Float64Array;
  private readonly mueff: number;
  private readonly cc: number;
  private readonly cs: number;
  private readonly c1: number;
  private readonly cmu: number;
  private readonly damps: number;
  private readonly chiN: number;
  private readonly normal: () => number;
  mean: Float64Array;
  sigma: number;
  private pc: Float64Array;
  private ps: Float64Array;
  private c: Float64Array[];
  /** C = B diag(d^2) B^T; B's columns are the eigenvectors. */
  private b: Float64Array[];
  private d: Float64Array;
  private evaluations = 0;
  private eigenAt = 0;
  generation = 0;
  private asked: Float64Array[] | undefined;

  constructor(options: CmaesOptions) {
    const n = options.mean.length;
    if (n < 1) throw new Error('internal: CMA-ES needs at least one dimension');
    if (!(options.sigma > 0)) throw new Error(`internal: CMA-ES step size ${options.sigma} is not positive`);
    this.dimension = n;
    this.population = options.population ?? 4 + Math.floor(3 * Math.log(n));
    if (this.population < 2) throw new Error('internal: CMA-ES needs a population of at least 2');
    this.mu = Math.floor(this.population / 2);
    const raw = Float64Array.from({ length: this.mu }, (_, i) => Math.log((this.population + 1) / 2) - Math.log(i + 1));
    const sum = raw.reduce((a, b) => a + b, 0);
    this.weights = raw.map((w) => w / sum);
    this.mueff = 1 / this.weights.reduce((a, w) => a + w * w, 0);
    const mueff = this.mueff;
    this.cc = (4 + mueff / n) / (n + 4 + (2 * mueff) / n);
    this.cs = (mueff + 2) / (n + mueff + 5);
    this.c1 = 2 / ((n + 1.3) ** 2 + mueff);
    this.cmu = Math.min(1 - this.c1, (2 * (mueff - 2 + 1 / mueff)) / ((n + 2) ** 2 + mueff));
    this.damps = 1 + 2 * Math.max(0, Math.sqrt((mueff - 1) / (n + 1)) - 1) + this.cs;
    this.chiN = Math.sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
    this.normal = gaussian(seededRandom(options.seed ?? 0));
    this.mean = Float64Array.from(options.mean);
    this.sigma = options.sigma;
    this.pc = new Float64Array(n);
    this.ps = new Float64Array(n);
    this.c = identity(n);
    this.b = identity(n);
    this.d = new Float64Array(n).fill(1);
  }

  /** The generation's candidates: mean + sigma * B D z, z standard normal. */
  ask(): Float64Array[] {
    const n = this.dimension;
    const candidates: Float64Array[] = [];
    for (let k = 0; k < this.population; k++) {
      const z = Float64Array.from({ length: n }, () => this.normal());
      const x = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        let y = 0;
        for (let j = 0; j < n; j++) y += this.b[i]![j]! * this.d[j]! * z[j]!;
        x[i] = this.mean[i]! + this.sigma * y;
      }
      candidates.push(x);
    }
    this.asked = candidates;
    return candidates.map((x) => Float64Array.from(x));
  }

  /**
   * Updates the distribution from the objective values of the candidates ask() gave, in the same
   * order. Ties rank in ask order, so equal scores never make the run depend on the sort.
   */
  tell(values: readonly number[]): void {
    const asked = this.asked;
    if (asked === undefined || values.length !== asked.length) throw new Error(`internal: tell() wants ${asked?.length ?? 0} values, got ${values.length}`);
    this.asked = undefined;
    const n = this.dimension;
    // A NaN ranks last (worst), as a non-finite score is the worst.
    const key = (v: number): number => (Number.isNaN(v) ? Infinity : v);
    const order = asked
      .map((_, k) => k)
      .sort((a, b) => key(values[a]!) - key(values[b]!) || (Number.isNaN(values[a]!) ? 1 : 0) - (Number.isNaN(values[b]!) ? 1 : 0) || a - b);
    this.evaluations += asked.length;
    this.generation++;
    const old = this.mean;
    const ys = order.slice(0, this.mu).map((k) => Float64Array.from(asked[k]!, (x, i) => (x - old[i]!) / this.sigma));
    const yw = new Float64Array(n);
    for (const [i, y] of ys.entries()) for (let j = 0; j < n; j++) yw[j]! += this.weights[i]! * y[j]!;
    this.mean = Float64Array.from(old, (m, j) => m + this.sigma * yw[j]!);

    // C^(-1/2) yw = B D^-1 B^T yw
    const bty = new Float64Array(n);
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += this.b[i]![j]! * yw[i]!;
      bty[j] = s / this.d[j]!;
    }
    const csFactor = Math.sqrt(this.cs * (2 - this.cs) * this.mueff);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < n; j++) s += this.b[i]![j]! * bty[j]!;
      this.ps[i] = (1 - this.cs) * this.ps[i]! + csFactor * s;
    }
    const psNorm = Math.hypot(...this.ps);
    const hsig = psNorm / Math.sqrt(1 - (1 - this.cs) ** (2 * this.generation)) / this.chiN < 1.4 + 2 / (n + 1) ? 1 : 0;
    const ccFactor = Math.sqrt(this.cc * (2 - this.cc) * this.mueff);
    for (let i = 0; i < n; i++) this.pc[i] = (1 - this.cc) * this.pc[i]! + hsig * ccFactor * yw[i]!;

    const keep = 1 - this.c1 - this.cmu + (1 - hsig) * this.c1 * this.cc * (2 - this.cc);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j <= i; j++) {
        let rankMu = 0;
        for (const [k, y] of ys.entries()) rankMu += this.weights[k]! * y[i]! * y[j]!;
        const value = keep * this.c[i]![j]! + this.c1 * this.pc[i]! * this.pc[j]! + this.cmu * rankMu;
        this.c[i]![j] = value;
        this.c[j]![i] = value;
      }
    }
    this.sigma *= Math.exp(Math.min(1, (this.cs / this.damps) * (psNorm / this.chiN - 1)));

    // Renewing B and D costs O(n^3): purecma does it every 0.5 lambda / (c1 + cmu) / n evaluations.
    if (this.evaluations - this.eigenAt > (0.5 * this.population) / (this.c1 + this.cmu) / n) {
      this.eigenAt = this.evaluations;
      const { values: eigenvalues, vectors } = symmetricEigen(this.c);
      this.b = vectors;
      this.d = eigenvalues.map((value) => Math.sqrt(Math.max(value, 1e-300)));
    }
  }

  /** Largest over smallest axis of the distribution: a run that exceeds ~1e14 has stopped making sense. */
  get conditionNumber(): number {
    return (Math.max(...this.d) / Math.min(...this.d)) ** 2;
  }
}

function identity(n: number): Float64Array[] {
  return Array.from({ length: n }, (_, i) => {
    const row = new Float64Array(n);
    row[i] = 1;
    return row;
  });
}

export interface MinimizeResult {
  best: Float64Array;
  value: number;
  evaluations: number;
  generations: number;
}

/**
 * Minimises f from `mean` until f < target or the budget is spent (whole generations only); the
 * best candidate seen wins, ties to the earlier one.
 */
export function minimize(f: (x: Float64Array) => number, options: CmaesOptions & { target?: number; maxEvaluations: number }): MinimizeResult {
  const es = new Cmaes(options);
  let best: Float64Array = Float64Array.from(options.mean);
  let value = Infinity;
  let evaluations = 0;
  while (evaluations + es.population <= options.maxEvaluations) {
    const candidates = es.ask();
    const values = candidates.map((x) => f(x));
    evaluations += candidates.length;
    for (const [k, v] of values.entries()) {
      if (v < value) {
        value = v;
        best = candidates[k]!;
      }
    }
    es.tell(values);
    if (options.target !== undefined && value < options.target) break;
    if (es.sigma < 1e-20 || es.conditionNumber > 1e14) break;
  }
  return { best, value, evaluations, generations: es.generation };
}
