import { GateError } from '../../errors.js';
import { bestScore, knownDirection, type Direction } from '../../eval/metrics.js';
import type { CompareDocument } from './compare-document.js';

export interface GateResult {
  gate: string;
  passed: boolean;
  detail: string;
}

export interface Gates {
  /** The greedy soup's validation score must be at least this good. */
  failUnder?: number | undefined;
  /** An earlier compare --json document, and how much worse any soup row may get against it. */
  baseline?: CompareDocument | undefined;
  maxDrop?: number | undefined;
  /** The greedy soup must be at least as good as the best ingredient on validation. */
  requireGreedyBeatsBest?: boolean | undefined;
}

const fmt = (value: number): string => value.toFixed(4);

/**
 * How much worse `score` is than `reference` (positive = worse), whichever way the metric points. A
 * non-finite score (a diverged soup) is infinitely worse than any finite one.
 */
function worseBy(direction: Direction, score: number, reference: number): number {
  if (!Number.isFinite(score)) return Number.isFinite(reference) ? Infinity : 0;
  if (!Number.isFinite(reference)) return -Infinity;
  return direction === 'maximize' ? reference - score : score - reference;
}

/** Checks each gate the user asked for against a compare result; a CI fails (exit 3) if any fails. */
export function checkGates(result: CompareDocument, gates: Gates): GateResult[] {
  const { metric } = result;
  // Documents written before soup recorded the direction carry a metric whose name says it.
  const direction = result.direction ?? knownDirection(metric) ?? 'maximize';
  const [validation] = result.datasets as [string];
  const greedy = result.rows.find((row) => row.kind === 'greedy');
  const greedyScore = greedy?.scores[validation];
  const out: GateResult[] = [];

  if (gates.failUnder !== undefined && greedyScore !== undefined) {
    const gap = worseBy(direction, greedyScore, gates.failUnder);
    out.push({
      gate: `--fail-under ${gates.failUnder}`,
      passed: gap <= 0,
      detail:
        gap <= 0
          ? `greedy soup scores ${fmt(greedyScore)} ${metric} on ${validation}`
          : `greedy soup scores ${fmt(greedyScore)} ${metric} on ${validation}, ${fmt(gap)} worse than ${gates.failUnder}`,
    });
  }

  if (gates.baseline !== undefined) {
    const maxDrop = gates.maxDrop ?? 0;
    const drops: string[] = [];
    let worst = -Infinity;
    for (const row of result.rows) {
      if (row.kind === 'ingredient') continue;
      // Several merges may be compared: a merge row lines up with the baseline's row of the same name.
      const before = gates.baseline.rows.find((candidate) => candidate.kind === row.kind && (row.kind !== 'merge' || candidate.name === row.name));
      if (before === undefined) continue;
      for (const [dataset, score] of Object.entries(row.scores)) {
        const previous = before.scores[dataset];
        if (previous === undefined) continue;
        const drop = worseBy(direction, score, previous);
        worst = Math.max(worst, drop);
        if (drop > maxDrop) drops.push(`${row.name} on ${dataset}: ${fmt(previous)} -> ${fmt(score)} (drop ${fmt(drop)})`);
      }
    }
    out.push({
      gate: `--baseline --max-drop ${maxDrop}`,
      passed: drops.length === 0,
      detail:
        drops.length === 0
          ? worst === -Infinity
            ? 'no soup row and data set in common with the baseline'
            : `no soup dropped more than ${maxDrop} (largest drop ${fmt(Math.max(worst, 0))})`
          : `dropped more than ${maxDrop}: ${drops.join('; ')}`,
    });
  }

  if (gates.requireGreedyBeatsBest && greedyScore !== undefined) {
    // Diverged runs are never in a soup, so the soup is not asked to beat them.
    const ingredients = result.rows.filter((row) => row.kind === 'ingredient' && row.diverged === undefined);
    const top = bestScore(
      direction,
      ingredients.map((row) => row.scores[validation]!),
    );
    const best = ingredients.find((row) => Object.is(row.scores[validation], top)) ?? ingredients[0]!;
    const bestScoreValue = best.scores[validation]!;
    const gap = worseBy(direction, greedyScore, bestScoreValue);
    out.push({
      gate: '--require-greedy-beats-best',
      passed: gap <= 0,
      detail:
        gap <= 0
          ? `greedy soup ${fmt(greedyScore)} vs best ingredient ${best.name} ${fmt(bestScoreValue)} on ${validation}`
          : `greedy soup ${fmt(greedyScore)} is ${fmt(gap)} worse than the best ingredient ${best.name} (${fmt(bestScoreValue)}) on ${validation}`,
    });
  }
  return out;
}

/** The error a CI sees (exit 3) when any gate failed, naming each with its detail; undefined when all passed. */
export function gateFailure(gates: readonly GateResult[]): GateError | undefined {
  const failed = gates.filter((gate) => !gate.passed);
  if (failed.length === 0) return undefined;
  return new GateError(`${failed.length} gate${failed.length > 1 ? 's' : ''} failed: ${failed.map((g) => `${g.gate} (${g.detail})`).join('; ')}`);
}
