/** Classification metrics computed on a model's outputs, batch by batch, and which way each metric points. */
import { UsageError } from '../errors.js';

export const METRIC_NAMES = ['accuracy', 'top5', 'loss', 'margin'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type Metrics = Record<MetricName, number>;

/** Whether a metric is better high (accuracy) or low (loss). */
export type Direction = 'maximize' | 'minimize';

/** Prefixes that scripts put before a metric's name (Hugging Face's Trainer prints eval_loss, eval_accuracy). */
const SPLIT_PREFIX = /^(?:eval|val|valid|validation|dev|test|train)[_/-]/i;

/** Names whose direction everyone agrees on, as scripts print them (lower case, prefix removed). */
const MINIMIZED = new Set([
  'loss',
  'nll',
  'perplexity',
  'ppl',
  'wer',
  'cer',
  'ter',
  'mse',
  'mae',
  'rmse',
  'mape',
  'error',
  'err',
  'error_rate',
  'log_loss',
  'logloss',
  'brier',
  'brier_score',
]);
const MAXIMIZED = new Set([
  'accuracy',
  'acc',
  'top1',
  'top5',
  'margin',
  'f1',
  'bleu',
  'sacrebleu',
  'chrf',
  'meteor',
  'exact_match',
  'em',
  'auc',
  'roc_auc',
  'pr_auc',
  'precision',
  'recall',
  'matthews_correlation',
  'mcc',
  'pearson',
  'pearsonr',
  'spearman',
  'spearmanr',
  'r2',
  'map',
  'mrr',
  'ndcg',
  'bertscore',
]);
/** Families of names: rouge1, rougeL, rougeLsum; f1_macro; accuracy_top5; exact_match_squad; ...; and anything ending in _loss or _error. */
const MAXIMIZED_FAMILIES = /^(?:rouge|f1|accuracy|acc|bleu|exact_match|auc|roc_auc|precision|recall|ndcg|map|mrr|top\d+)(?:$|[_@-]|\d|l)/;
const MINIMIZED_FAMILIES = /(?:^|_)(?:loss|error|wer|cer|mse|mae|rmse|perplexity)$/;

/** The direction everyone agrees on for a metric's name, or undefined when the name does not say. */
export function knownDirection(metric: string): Direction | undefined {
  const name = metric.replace(SPLIT_PREFIX, '').toLowerCase();
  if (MINIMIZED.has(name) || MINIMIZED_FAMILIES.test(name)) return 'minimize';
  if (MAXIMIZED.has(name) || MAXIMIZED_FAMILIES.test(name)) return 'maximize';
  return undefined;
}

/**
 * Which way --metric points: --maximize or --minimize when given, else the known direction of its name.
 * Never guessed: a name that does not say is an error that asks for one of the flags.
 */
export function metricDirection(metric: string, flags: { maximize?: boolean | undefined; minimize?: boolean | undefined } = {}): Direction {
  if (flags.maximize === true && flags.minimize === true) throw new UsageError('--maximize and --minimize contradict each other; pass one of them');
  if (flags.maximize === true) return 'maximize';
  if (flags.minimize === true) return 'minimize';
  const known = knownDirection(metric);
  if (known !== undefined) return known;
  throw new UsageError(`--metric ${metric}: soup does not know whether a higher or a lower ${metric} is better`, {
    hint: `pass --maximize if higher is better (as for accuracy), or --minimize if lower is better (as for loss)`,
  });
}

export function higherIsBetter(direction: Direction): boolean {
  return direction === 'maximize';
}

/** "higher is better" or "lower is better", for headers and legends. */
export function describeDirection(direction: Direction): string {
  return direction === 'maximize' ? 'higher is better' : 'lower is better';
}

/**
 * Whether `score` improves on `best` (strictly, unless ties are accepted). A non-finite score (NaN, or
 * an infinity from a diverged run or a script) is the worst there is: it improves on nothing, and any
 * finite score improves on it.
 */
export function improves(direction: Direction, score: number, best: number, acceptTies: boolean): boolean {
  if (!Number.isFinite(score)) return false;
  if (!Number.isFinite(best)) return true;
  if (score === best) return acceptTies;
  return direction === 'maximize' ? score > best : score < best;
}

/** Orders scores best first (for Array.sort); non-finite scores come last, equal scores keep their order. */
export function byScore(direction: Direction): (a: number, b: number) => number {
  return (a, b) => {
    const [finiteA, finiteB] = [Number.isFinite(a), Number.isFinite(b)];
    if (!finiteA || !finiteB) return Number(finiteB) - Number(finiteA) || 0;
    return direction === 'maximize' ? b - a : a - b;
  };
}

/** The best of some scores, whichever way the metric points; non-finite ones only when there is nothing else. */
export function bestScore(direction: Direction, scores: readonly number[]): number | undefined {
  return [...scores].sort(byScore(direction))[0];
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
      // A diverged model's NaN or infinite outputs name no class: the sample counts as wrong, its loss and margin are NaN.
      let finite = true;
      for (let k = 0; k < c; k++) {
        const v = outputs[row + k]!;
        if (v - v !== 0) finite = false;
        if (v > best) {
          best = v;
          argmax = k;
        }
        if (k !== label) {
          if (v > bestOther) bestOther = v;
          if (v > target) above++;
        }
      }
      if (finite && argmax === label) this.correct++;
      if (finite && above < 5) this.top5++;
      if (!finite) {
        this.marginSum = NaN;
        this.lossSum = NaN;
      }
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
