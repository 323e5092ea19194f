import assert from 'node:assert/strict';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import type { SafetensorsFile } from '../../../src/checkpoint/safetensors.js';
import type { CandidateWeights } from '../../../src/weights/candidate.js';
import { greedySoup } from '../../../src/soup/strategies/greedy.js';
import { oneWeightIngredients, tempDir } from '../../helpers/files.js';

const dir = await tempDir();
const opened: SafetensorsFile[] = [];
after(() => Promise.all(opened.map((c) => c.close())));

async function ingredients(values: number[]): Promise<SafetensorsFile[]> {
  const list = await oneWeightIngredients(path.join(dir, `set-${opened.length}`), values);
  opened.push(...list);
  return list;
}

/**
 * A slow concurrent scorer (each evaluation takes `ms`): the score is 1 - |w - 0.45|. It records the
 * weight of each candidate, the most evaluations under way at once, and the candidates cancelled.
 */
function slowScorer(ms: number) {
  const calls: number[] = [];
  const cancelled: number[] = [];
  let running = 0;
  let most = 0;
  const fn = async (candidate: CandidateWeights, _label: string, _bound?: unknown, signal?: AbortSignal) => {
    const w = (await candidate.floats('w'))[0]!;
    calls.push(w);
    most = Math.max(most, ++running);
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => {
          clearTimeout(timer);
          cancelled.push(w);
          reject(new Error('cancelled'));
        });
      });
    } finally {
      running--;
    }
    return 1 - Math.abs(w - 0.5);
  };
  return { fn, calls, cancelled, most: () => most };
}

describe('greedy look-ahead', () => {
  it('scores the next steps for both outcomes in idle slots, with the decisions, soup and bits of the sequential loop, in less time', async () => {
    const list = await ingredients([0.3, 0.45, 0.62, 0.7, 0.41, 0.55, 0.8, 0.2]);
    const sequential = slowScorer(40);
    const ingredientScores = [0.3, 0.45, 0.62, 0.7, 0.41, 0.55, 0.8, 0.2].map((w) => 1 - Math.abs(Math.fround(w) - 0.5));
    let started = performance.now();
    const one = await greedySoup(list, sequential.fn, { metric: 'accuracy', direction: 'maximize', scores: ingredientScores });
    const oneSeconds = performance.now() - started;
    const ahead = slowScorer(40);
    started = performance.now();
    const three = await greedySoup(list, ahead.fn, { metric: 'accuracy', direction: 'maximize', scores: ingredientScores, lookahead: 3 });
    const threeSeconds = performance.now() - started;
    assert.deepEqual(three.steps, one.steps);
    assert.deepEqual(
      three.soup.chosen.map((c) => c.name),
      one.soup.chosen.map((c) => c.name),
    );
    assert.deepEqual(await three.soup.weights().floats('w'), await one.soup.weights().floats('w'));
    assert.ok(one.steps.some((step) => step.accepted) && one.steps.some((step) => !step.accepted), 'both outcomes occur');
    assert.equal(sequential.most(), 1);
    assert.equal(ahead.most(), 3, 'three evaluations at once');
    assert.equal(three.evaluations, one.evaluations);
    // Every candidate the sequential loop scored was scored ahead, with the same bits.
    for (const w of sequential.calls) assert.ok(ahead.calls.includes(w), `${w} was scored`);
    assert.equal(three.evaluationsWasted, ahead.calls.length - sequential.calls.length);
    assert.ok(ahead.cancelled.length > 0, 'a branch not taken was cancelled');
    assert.ok(threeSeconds < oneSeconds * 0.8, `faster: ${threeSeconds.toFixed(0)} ms vs ${oneSeconds.toFixed(0)} ms`);
  });

  it('stops every evaluation under way when one that a decision needs fails', async () => {
    const list = await ingredients([0.3, 0.45, 0.62, 0.7]);
    let running = 0;
    const fn = async (candidate: CandidateWeights, _label: string, _bound?: unknown, signal?: AbortSignal) => {
      const w = (await candidate.floats('w'))[0]!;
      running++;
      try {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(w === Math.fround((0.45 + 0.3) / 2) ? () => reject(new Error('the node went away')) : resolve, 30);
          signal?.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(new Error('cancelled'));
          });
        });
      } finally {
        running--;
      }
      return 1;
    };
    const scores = [0.85, 1, 0.83, 0.75];
    await assert.rejects(greedySoup(list, fn, { metric: 'accuracy', direction: 'maximize', scores, lookahead: 3 }), { message: 'the node went away' });
    assert.equal(running, 0, 'nothing is left running');
  });
});
