import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { slurmSummary } from '../../src/report/greedy.js';

const job = (id: string, queued: number | null, running: number | null, extra: { attempt?: number; reattached?: true } = {}) => ({
  id,
  label: `run-${id}`,
  state: 'COMPLETED',
  queuedSeconds: queued,
  runningSeconds: running,
  output: `/shared/soup-job-${id}.out`,
  attempt: extra.attempt ?? 1,
  ...(extra.reattached === undefined ? {} : { reattached: extra.reattached }),
});

describe('slurmSummary', () => {
  it('counts the jobs, those scored ahead, re-submitted and taken over from an earlier run, with mean times queued and running', () => {
    const jobs = [job('1', 0.5, 2), job('2', 1.5, 4, { attempt: 2 }), job('3', null, null, { reattached: true })];
    assert.equal(
      slurmSummary(jobs, 1),
      'Slurm:  3 jobs (1 scored ahead and not needed, 1 re-submitted, 1 from an earlier run); 1.00 s queued and 3.00 s running on average',
    );
    assert.equal(slurmSummary([job('7', null, null)], 0), 'Slurm:  1 job; ? queued and ? running on average');
  });
});
