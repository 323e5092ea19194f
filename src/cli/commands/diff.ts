import { z } from 'zod';
import { closeAll, openAll } from '../../checkpoint/discover.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { GateError } from '../../errors.js';
import { diffSummary, renderDiff } from '../../report/diff.js';
import { Terminal } from '../../report/terminal.js';
import { discoverSingle } from '../../soup/single.js';
import { diffAgainst } from '../../soup/strategies/diff.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend({ tolerance: z.coerce.number().nonnegative().default(0) });

export async function runDiff(first: string, second: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const why = 'soup diff compares two single checkpoints';
  // Each path on its own: two soups may well share a name (runs-a/soup vs runs-b/soup).
  const ends = [await discoverSingle(first, discoverOptions(options, terminal), why), await discoverSingle(second, discoverOptions(options, terminal), why)];
  const [a, b] = (await openAll(ends)) as [Checkpoint, Checkpoint];
  try {
    const made = await diffAgainst(a, b, options.tolerance, signal);
    renderDiff(terminal, made);
    if (made.verdict === 'different') throw new GateError(diffSummary(made), { verdict: true });
  } finally {
    await closeAll([a, b]);
  }
}
