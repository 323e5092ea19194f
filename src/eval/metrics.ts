/** Classification metrics computed on a model's outputs, batch by batch. */

export const METRIC_NAMES = ['accuracy', 'top5', 'loss', 'margin'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type Metrics = Record<MetricName, number>;

/** Loss is the one metric where lower is better; metrics from --eval-cmd follow the same rule. */
export function higherIsBetter(metric: string): boolean {
  return metric !== 'loss';
}

/** Whether `score` improves on `best` (strictly, unless ties are accepted). */
export function improves(metric: string, score: number, best: number, acceptTies: boolean): boolean {
  if (Number.isNaN(score)) return false;
  if (score === best) return acceptTies;
  return higherIsBetter(metric) ? score > best : score < best;
}

/** Keras clips probabilities the same way before taking their log. */
export const PROBABILITY_EPSILON = 1e-7;

export class MetricAccumulator {
  private n = 0;
  private correct = 0;
  private top5 = 0;
  private lossSum = 0;
  private marginSum = 0;

  /**
   * @param classes outputs per sample
   * @param probabilities the outputs are probabilities (the model ends in softmax), not logits
   */
  constructor(
    private readonly classes: number,
    private readonly probabilities: boolean,
  ) {}

  /** Adds a batch: `outputs` holds labels.length rows of `classes` values. */
  add(outputs: ArrayLike<number>, labels: ArrayLike<number>): void {
    const c = this.classes;
    for (let s = 0; s < labels.length; s++) {
      const row = s * c;
      const label = labels[s]!;
      const target = outputs[row + label]!;
      let argmax = 0;
      let best = -Infinity;
      let bestOther = -Infinity;
      let above = 0;
      for (let k = 0; k < c; k++) {
        const v = outputs[row + k]!;
        if (v > best) {
          best = v;
          argmax = k;
        }
        if (k !== label) {
          if (v > bestOther) bestOther = v;
          if (v > target) above++;
        }
      }
      if (argmax === label) this.correct++;
      if (above < 5) this.top5++;
      this.marginSum += target - bestOther;
      if (this.probabilities) {
        this.lossSum -= Math.log(Math.min(Math.max(target, PROBABILITY_EPSILON), 1 - PROBABILITY_EPSILON));
      } else {
        let sumExp = 0;
        for (let k = 0; k < c; k++) sumExp += Math.exp(outputs[row + k]! - best);
        this.lossSum += Math.log(sumExp) + best - target;
      }
    }
    this.n += labels.length;
  }

  get count(): number {
    return this.n;
  }

  /**
   * The best final score still reachable after `remaining` more samples, for exact early stopping:
   * all of them right (accuracy, top5), or all of them at zero loss (cross-entropy is never
   * negative). Undefined for metrics without such a bound (margin).
   */
  bestReachable(metric: string, remaining: number): number | undefined {
    const n = this.n + remaining;
    switch (metric) {
      case 'accuracy':
        return (this.correct + remaining) / n;
      case 'top5':
        return (this.top5 + remaining) / n;
      case 'loss':
        return this.lossSum / n;
      default:
        return undefined;
    }
  }

  result(): Metrics {
    const n = Math.max(this.n, 1);
    return { accuracy: this.correct / n, top5: this.top5 / n, loss: this.lossSum / n, margin: this.marginSum / n };
  }
}
