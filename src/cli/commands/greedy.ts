import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { UsageError } from '../../errors.js';
import { renderGreedy } from '../../report/greedy.js';
import { Terminal } from '../../report/terminal.js';
import { openIngredients, type OpenOptions } from '../../soup/ingredients.js';
import { greedyMethod, refuseUngrowable } from '../../soup/merge/greedy-plan.js';
import { makeGreedySoup } from '../../soup/strategies/greedy-soup.js';
import { describeModelFiles, writeOutcome } from '../../soup/write.js';
import { evaluationOptions } from '../evaluation.js';
import { configFromFlags, givesParameters, layerIndex, mergeOptions } from '../merge-options.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';
import { prepareSoupOutput } from '../output.js';

const schema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend(mergeOptions.shape)
  .extend({
    acceptTies: z.boolean().default(false),
    /** commander's --no-prune sets prune: false. */
    prune: z.boolean().default(true),
  });

export async function runGreedy(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const { checkpoints, method, all } = await openGreedy(inputs, options, signal, discoverOptions(options, terminal));
  try {
    const shape = method === undefined ? checkpoints : [method.base ?? checkpoints[0]!];
    const protect = [...all.map((checkpoint) => checkpoint.path), options.model, options.val];
    const output = await prepareSoupOutput(shape, options, terminal, { companionsFrom: checkpoints, protect });
    const warn = (line: string): void => terminal.warn(line);
    const run = { allowNonFinite: options.allowNonfinite, command: commandArguments(), onProgress: terminal.progress(), warn, signal };
    const made = await makeGreedySoup(checkpoints, method, output, { ...options, ...run });
    terminal.endProgress();
    const written = await writeOutcome(all, output, made, signal);
    const seconds = (performance.now() - started) / 1000;
    renderGreedy(terminal, made, { path: written.path, seconds, modelFiles: describeModelFiles(output), scoreCache: options.scoreCache });
  } finally {
    terminal.endProgress();
    await closeAll(all);
  }
}

/** The ingredients, and with --method the merge each candidate is made with (its base among `all`). */
async function openGreedy(inputs: string[], options: z.output<typeof schema>, signal: AbortSignal, discover: OpenOptions) {
  if (options.method === undefined) {
    const flag = givesParameters(options);
    if (flag !== undefined) throw new UsageError(`--${flag}: only used with --method (greedy over a merge method)`);
    const checkpoints = await openIngredients(inputs, discover);
    return { checkpoints, method: undefined, all: checkpoints };
  }
  const { config, opened } = await configFromFlags(inputs, options, discover, refuseUngrowable);
  const names = opened.all[0]!.tensors().map((tensor) => tensor.name);
  const plan = greedyMethod(config, opened, { seed: options.randomSeed, layers: layerIndex(options, names), allowNonFinite: options.allowNonfinite, signal });
  return { checkpoints: opened.models, method: plan, all: opened.all };
}
