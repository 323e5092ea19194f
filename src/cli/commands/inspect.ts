import { closeAll, discoverIngredients, openAll } from '../../checkpoint/discover.js';
import { IncompatibleError } from '../../errors.js';
import { renderInspect } from '../../report/inspect.js';
import { Terminal } from '../../report/terminal.js';
import { inspectCheckpoints } from '../../soup/strategies/inspect.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

export async function runInspect(inputs: string[], rawOptions: unknown): Promise<void> {
  const options = parseOptions(commonOptions, rawOptions);
  const terminal = new Terminal(options);
  const checkpoints = await openAll(await discoverIngredients(inputs, discoverOptions(options, terminal)));
  try {
    const made = inspectCheckpoints(checkpoints);
    renderInspect(terminal, made);
    if (!made.compatible) throw new IncompatibleError(made.problems);
  } finally {
    await closeAll(checkpoints);
  }
}
