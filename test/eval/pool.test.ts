import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { runConcurrently } from '../../src/eval/pool.js';
import { evaluationStatus } from '../../src/report/terminal.js';

describe('runConcurrently', () => {
  it('runs at most N tasks at a time and every task once', async () => {
    let running = 0;
    let most = 0;
    const ran: number[] = [];
    await runConcurrently(7, 3, async (index) => {
      running++;
      most = Math.max(most, running);
      await sleep(5);
      ran.push(index);
      running--;
    });
    assert.equal(most, 3);
    assert.deepEqual(ran.sort(), [0, 1, 2, 3, 4, 5, 6]);
  });

  it('on a failure stops the other tasks through their signal and throws only once they have finished', async () => {
    const finished: string[] = [];
    const failure = new Error('evaluation 1 failed');
    await assert.rejects(
      runConcurrently(5, 3, async (index, signal) => {
        if (index === 1) throw failure;
        await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
        await sleep(10); // cleaning up: removing a candidate checkpoint
        finished.push(`task ${index} cleaned up`);
      }),
      failure,
    );
    assert.deepEqual(finished.sort(), ['task 0 cleaned up', 'task 2 cleaned up'], 'tasks not yet started never start');
  });
});

describe('evaluation progress', () => {
  it('says how many evaluations are done, running and left, and the time of one', () => {
    assert.equal(
      evaluationStatus({ kind: 'score', done: 3, total: 15, candidate: 'x', running: 2, secondsEach: 42 }),
      '3 / 15 done, 2 running, 10 left, 42.0 s each',
    );
    assert.equal(evaluationStatus({ kind: 'score', done: 0, total: 4, candidate: 'x', running: 4 }), '0 / 4 done, 4 running, 0 left');
    assert.equal(evaluationStatus({ kind: 'score', done: 1, total: 4, candidate: 'x' }), '1 / 4');
  });
});
