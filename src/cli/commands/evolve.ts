import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { evolvePlot, renderEvolve } from '../../report/evolve.js';
import { Terminal } from '../../report/terminal.js';
import { evolveSoup, openEvolveRecipe, prepareEvolveFiles, writeEvolveFiles } from '../../soup/strategies/evolve-soup.js';
import { writeOutcome } from '../../soup/write.js';
import { evaluationOptions } from '../evaluation.js';
import { layerIndex } from '../merge-options.js';
import { commonOptions, parseOptions, soupOutputOptions } from '../options.js';
import { prepareSoupOutput } from '../output.js';
import { searchCommandArguments, searchFlags, searchHooks } from '../search-common.js';

const schema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend({
    evaluations: searchFlags.evaluations,
    population: searchFlags.population,
    seed: searchFlags.seed,
    sigma: z.coerce.number().finite().positive().default(0.3),
    objective: searchFlags.objective,
    scoreCache: searchFlags.scoreCache,
    plot: z.string().min(1).optional(),
    configOut: z.string().min(1).optional(),
    randomSeed: z.coerce.number().int().nonnegative().default(0),
    layerPattern: searchFlags.layerPattern,
  });

export async function runEvolve(file: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const hooks = searchHooks(terminal, signal);
  const inputs = await openEvolveRecipe(file, hooks);
  const { opened } = inputs;
  try {
    const reference = opened.base ?? opened.models[0]!;
    const output = await prepareSoupOutput([reference], options, terminal, {
      companionsFrom: opened.base === undefined ? opened.models : [opened.base, ...opened.models],
      protect: [...opened.all.flatMap((checkpoint) => [checkpoint.path, ...checkpoint.files]), options.model, options.val],
    });
    const files = await prepareEvolveFiles(output, { ...options, out: options.output });
    const layers = layerIndex(
      options,
      reference.tensors().map((tensor) => tensor.name),
    );
    const made = await evolveSoup(inputs, files, { evaluation: options, settings: options, layers, command: searchCommandArguments(), ...hooks });
    const written = await writeOutcome(opened.all, output, made, signal, made.moreFiles);
    terminal.endProgress();
    await writeEvolveFiles(made, options.plot === undefined ? undefined : evolvePlot(made.document, file));
    const seconds = (performance.now() - started) / 1000;
    renderEvolve(
      terminal,
      made.document,
      { path: written.path, seconds },
      { scoredWith: made.scoredWith, format: output.target.kind, evalCmd: options.evalCmd },
    );
  } finally {
    await closeAll(opened.all);
  }
}
