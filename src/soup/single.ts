import { discoverIngredients, openAll, type DiscoverOptions, type Ingredient } from '../checkpoint/discover.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { UsageError } from '../errors.js';

/** The one checkpoint `input` holds, or a usage error ending in `why` a command wants one (eval, diff, card, interpolate). */
export async function discoverSingle(input: string, discover: DiscoverOptions | undefined, why: string): Promise<Ingredient> {
  const found = await discoverIngredients([input], discover);
  if (found.length !== 1) throw new UsageError(`${input} holds ${found.length} checkpoints; ${why}`);
  return found[0]!;
}

/** The one checkpoint `input` holds, opened. */
export async function openSingle(input: string, discover: DiscoverOptions | undefined, why: string): Promise<Checkpoint> {
  const [checkpoint] = await openAll([await discoverSingle(input, discover, why)]);
  return checkpoint!;
}
