import type { Checkpoint } from '../checkpoint/types.js';
import type { Terminal } from '../report/terminal.js';
import { prepareModelFiles, prepareOutput, type PreparedOutput } from '../soup/write.js';
import type { SoupOutputOptions } from './options.js';

/**
 * -o, checked before the slow work: the output's format and tensors follow `shape` (the ingredients,
 * or the base a merge starts from), its config and tokenizer come from `companionsFrom` (the
 * ingredients by default; --copy-from picks one), and it may not be, hold or sit inside any of
 * them or of `protect` (--model, --val, ...).
 */
export async function prepareSoupOutput(
  shape: readonly Checkpoint[],
  options: SoupOutputOptions,
  terminal: Terminal,
  { companionsFrom = shape, protect = [] }: { companionsFrom?: readonly Checkpoint[]; protect?: readonly (string | undefined)[] } = {},
): Promise<PreparedOutput> {
  const output = await prepareOutput(shape, { out: options.output, force: options.force, dtype: options.dtype, shardSize: options.outShardSize, protect });
  for (const warning of await prepareModelFiles(companionsFrom, output, options)) terminal.warn(warning);
  return output;
}
