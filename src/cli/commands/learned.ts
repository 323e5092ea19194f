import { closeAll } from '../../checkpoint/discover.js';
import { renderLearned } from '../../report/learned.js';
import { Terminal } from '../../report/terminal.js';
import { openIngredients } from '../../soup/ingredients.js';
import { checkLearnedIngredients, learnedSoup } from '../../soup/strategies/learned-soup.js';
import { writeOutcome } from '../../soup/write.js';
import { learnedSchema, searchOnlyFlag } from '../learned-options.js';
import { commandArguments, discoverOptions, parseOptions } from '../options.js';
import { prepareSoupOutput } from '../output.js';
import { searchHooks } from '../search-common.js';

export async function runLearned(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(learnedSchema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  try {
    // Models soup can only score are searched without gradients (CMA-ES over the mixing weights).
    if (options.evalCmd !== undefined || checkpoints[0]!.format === 'onnx' || options.model?.endsWith('.onnx') === true) {
      const { runLearnedSearch } = await import('./learned-search.js');
      await runLearnedSearch(inputs, options, checkpoints, terminal, signal, started);
      return;
    }
    const hooks = searchHooks(terminal, signal);
    const ingredients = await checkLearnedIngredients(checkpoints, {
      model: options.model,
      searchOnly: searchOnlyFlag(options),
      allowNonFinite: options.allowNonfinite,
      maxMemory: options.maxMemory,
      inputs,
      ...hooks,
    });
    const output = await prepareSoupOutput(checkpoints, options, terminal, { protect: [options.model, options.val] });
    const made = await learnedSoup(ingredients, output, { evaluation: options, params: options, dtype: options.dtype, command: commandArguments(), ...hooks });
    const written = await writeOutcome(checkpoints, output, made, signal);
    terminal.endProgress();
    const seconds = (performance.now() - started) / 1000;
    renderLearned(terminal, made.document, { path: written.path, seconds }, { scoredWith: made.scoredWith, format: output.target.kind });
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
