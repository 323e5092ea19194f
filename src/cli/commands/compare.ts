import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { renderCompare } from '../../report/compare-summary.js';
import { Terminal } from '../../report/terminal.js';
import { openIngredients } from '../../soup/ingredients.js';
import { runComparison } from '../../soup/strategies/compare-run.js';
import { planComparison } from '../../soup/strategies/compare-plan.js';
import { gateFailure } from '../../soup/strategies/gates.js';
import { evaluationOptions } from '../evaluation.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  test: z.array(z.string()).default([]),
  acceptTies: z.boolean().default(false),
  allowNonfinite: z.boolean().default(false),
  allowFused: z.boolean().default(false),
  saveDir: z.string().min(1).optional(),
  force: z.boolean().default(false),
  markdown: z.string().min(1).optional(),
  plot: z.string().min(1).optional(),
  failUnder: z.coerce.number().finite().optional(),
  baseline: z.string().min(1).optional(),
  maxDrop: z.coerce.number().nonnegative().optional(),
  requireGreedyBeatsBest: z.boolean().default(false),
  merge: z.array(z.string()).default([]),
});

export async function runCompare(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const plan = await planComparison(options);
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  try {
    const comparison = await runComparison(checkpoints, plan, {
      ...options,
      allowNonFinite: options.allowNonfinite,
      command: commandArguments(),
      warn: (message) => terminal.warn(message),
      onProgress: terminal.progress(),
      signal,
    });
    terminal.endProgress();
    await renderCompare(terminal, comparison, options);
    const failed = gateFailure(comparison.document.gates ?? []);
    if (failed !== undefined) throw failed;
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
