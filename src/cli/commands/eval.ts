import { z } from 'zod';
import { closeAll, discoverIngredients, openAll } from '../../checkpoint/discover.js';
import { UsageError } from '../../errors.js';
import { describeDirection, knownDirection } from '../../eval/metrics.js';
import { ingredientWeights } from '../../weights/candidate.js';
import { describeDivergence } from '../../soup/diverged.js';
import { formatScore } from '../../recipe/scores.js';
import { table } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { scanDiverged } from '../diverged.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  allowNonfinite: z.boolean().default(false),
});

export async function runEval(input: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const ingredients = await discoverIngredients([input], discoverOptions(options, terminal));
  if (ingredients.length !== 1) {
    throw new UsageError(`${input} holds ${ingredients.length} checkpoints; soup eval scores one (use soup compare for several)`);
  }
  const [checkpoint] = await openAll(ingredients);
  try {
    const { evaluator, dataset, backend, warnings, direction, slurm } = await createEvaluator(options, checkpoint!, undefined, terminal.progress());
    for (const warning of warnings ?? []) terminal.warn(warning);
    let evaluation;
    let divergence;
    try {
      divergence = (await scanDiverged([checkpoint!], options, terminal, signal)).get(checkpoint!);
      // A diverged checkpoint is scored as it is: its NaN outputs count as wrong, its loss is NaN.
      evaluation = await evaluator.evaluate(ingredientWeights(checkpoint!, true), signal);
    } finally {
      await evaluator.dispose();
    }
    const n = evaluation.n ?? null;
    if (terminal.json) {
      terminal.printJson({
        checkpoint: checkpoint!.path,
        n,
        backend,
        metrics: evaluation.metrics,
        metric: options.metric,
        direction,
        ...(divergence === undefined ? {} : { diverged: divergence }),
        ...(slurm === undefined ? {} : { slurmJobs: slurm.records }),
      });
      return;
    }
    const on = dataset === undefined ? (options.val ?? "the command's own data") : `${dataset.name} (${dataset.n} samples)`;
    terminal.print(`${terminal.paint.bold(checkpoint!.name)} on ${on}, ${evaluator.description}`);
    const rows = Object.entries(evaluation.metrics).map(([metric, value]) => {
      const way = metric === options.metric ? direction : knownDirection(metric);
      return [metric, formatScore(value), way === undefined ? '' : terminal.paint.dim(describeDirection(way))];
    });
    for (const line of table(rows, [false, true, false])) terminal.print(`  ${line}`);
    if (divergence !== undefined) terminal.print(terminal.paint.yellow(`Diverged: ${describeDivergence(divergence)}; a soup leaves this checkpoint out.`));
  } finally {
    await closeAll([checkpoint!]);
  }
}
