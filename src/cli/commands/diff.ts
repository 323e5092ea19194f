import { z } from 'zod';
import { closeAll, discoverIngredients, openAll, type DiscoverOptions, type Ingredient } from '../../checkpoint/discover.js';
import { GateError, UsageError } from '../../errors.js';
import { diffCheckpoints } from '../../soup/strategies/diff.js';
import { table } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend({ tolerance: z.coerce.number().nonnegative().default(0) });

export async function runDiff(first: string, second: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  // Each path on its own: two soups may well share a name (runs-a/soup vs runs-b/soup).
  const [a, b] = await openAll([await single(first, discoverOptions(options, terminal)), await single(second, discoverOptions(options, terminal))]);
  try {
    const diff = await diffCheckpoints(a!, b!, signal);
    const verdict = diff.maxAbsDiff === 0 ? 'identical' : diff.maxAbsDiff <= options.tolerance ? 'within-tolerance' : 'different';
    if (terminal.json) {
      terminal.printJson({
        a: a!.path,
        b: b!.path,
        tolerance: options.tolerance,
        verdict,
        maxAbsDiff: diff.maxAbsDiff,
        worst: diff.worst ?? null,
        minCosine: diff.minCosine,
        tensors: diff.tensors,
      });
    } else {
      const rows = diff.tensors.map((t) => [t.name, t.maxAbsDiff.toExponential(3), t.cosine.toFixed(8)]);
      for (const line of table([['tensor', 'max |a-b|', 'cosine'].map((h) => terminal.paint.dim(h)), ...rows], [false, true, true]))
        terminal.print(`  ${line}`);
      terminal.print();
    }
    const summary =
      verdict === 'identical'
        ? `${a!.path} and ${b!.path} are identical (${diff.tensors.length} tensors)`
        : `${a!.path} and ${b!.path} differ by at most ${diff.maxAbsDiff.toExponential(3)} (in ${diff.worst}), ${verdict === 'different' ? 'more than' : 'within'} the tolerance ${options.tolerance}`;
    if (verdict === 'different') throw new GateError(summary, { verdict: true });
    terminal.print(terminal.paint.green(summary));
  } finally {
    await closeAll([a!, b!]);
  }
}

async function single(input: string, discover: DiscoverOptions): Promise<Ingredient> {
  const found = await discoverIngredients([input], discover);
  if (found.length !== 1) throw new UsageError(`${input} holds ${found.length} checkpoints; soup diff compares two single checkpoints`);
  return found[0]!;
}
