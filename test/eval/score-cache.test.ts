import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ScoreJournal, candidateKey, type JournalEntry } from '../../src/eval/score-cache.js';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();

const entry = (candidate: string, accuracy: number, extra: Partial<JournalEntry> = {}): JournalEntry => ({
  evaluator: 'e',
  candidate,
  label: candidate,
  metrics: { accuracy },
  seconds: 1,
  ...extra,
});

describe('score cache journal', () => {
  it('appends one flushed line per score and finds it again after reopening', async () => {
    const file = path.join(dir, 'scores.jsonl');
    const first = await ScoreJournal.open(file);
    assert.deepEqual(first.warnings, []);
    await first.journal.append(entry('x', 0.5));
    await first.journal.append(entry('y', 0.75));
    assert.equal((await readFile(file, 'utf8')).split('\n').length, 3, 'two lines, each ended');
    await first.journal.close();
    const again = await ScoreJournal.open(file);
    assert.equal(again.journal.size, 2);
    assert.equal(again.journal.lookup('e', 'y')?.metrics.accuracy, 0.75);
    assert.equal(again.journal.lookup('other evaluator', 'y'), undefined);
    await again.journal.close();
  });

  it('skips a torn last line with a warning and cuts it off, so the next entry starts on its own line', async () => {
    const file = path.join(dir, 'torn.jsonl');
    await writeFile(file, `${JSON.stringify(entry('x', 0.5))}\n{"evaluator":"e","candi`);
    const { journal, warnings } = await ScoreJournal.open(file);
    assert.deepEqual(warnings, [`${file}: the last line is incomplete (a run stopped while writing it); it is ignored and that candidate is scored again`]);
    assert.equal(journal.size, 1);
    await journal.append(entry('z', 0.25));
    await journal.close();
    assert.deepEqual(
      (await readFile(file, 'utf8')).split('\n').map((line) => (line === '' ? '' : JSON.parse(line).candidate)),
      ['x', 'z', ''],
    );
  });

  it('ends a complete last line that lost only its newline, and refuses a broken line in the middle', async () => {
    const file = path.join(dir, 'no-newline.jsonl');
    await writeFile(file, JSON.stringify(entry('x', 0.5)));
    const { journal, warnings } = await ScoreJournal.open(file);
    assert.deepEqual(warnings, []);
    await journal.append(entry('y', 0.5));
    await journal.close();
    assert.equal((await readFile(file, 'utf8')).split('\n').length, 3);
    const broken = path.join(dir, 'broken.jsonl');
    await writeFile(broken, `not json\n${JSON.stringify(entry('x', 0.5))}\n`);
    await assert.rejects(ScoreJournal.open(broken), { message: `${broken}: line 1 is not a score cache entry` });
  });

  it('answers a stopped-early score only for the same bound', async () => {
    const { journal } = await ScoreJournal.open(path.join(dir, 'bound.jsonl'));
    const bound = { metric: 'accuracy', direction: 'maximize' as const, best: 0.9, acceptTies: false };
    await journal.append(entry('p', 0.8, { pruned: true, bound }));
    assert.equal(journal.lookup('e', 'p', bound)?.metrics.accuracy, 0.8);
    assert.equal(journal.lookup('e', 'p', { ...bound, best: 0.7 }), undefined);
    assert.equal(journal.lookup('e', 'p'), undefined);
    await journal.append(entry('p', 0.85));
    assert.equal(journal.lookup('e', 'p', { ...bound, best: 0.7 })?.metrics.accuracy, 0.85, 'a full score answers any bound');
    await journal.close();
  });

  it('keys a candidate by its ingredients and weights, in any order', () => {
    const a = { sha256: 'a'.repeat(64), weight: 0.5 };
    const b = { sha256: 'b'.repeat(64), weight: 0.5 };
    assert.equal(candidateKey('mean', [a, b]), candidateKey('mean', [b, a]));
    assert.notEqual(candidateKey('mean', [a, b]), candidateKey('mean', [a, { ...b, weight: 0.25 }]));
    assert.notEqual(candidateKey('mean', [a]), candidateKey('mean', [b]));
  });
});
