import { closeAll, discoverIngredients, openAll } from '../../checkpoint/discover.js';
import { UsageError } from '../../errors.js';
import { ingredientWeights } from '../../soup/candidate.js';
import { formatScore, } from '../../report/scores.js';
import { table } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { createEvaluator, evaluationOptions } from '../evaluation.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape);

export async function runEval(input: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const ingredients = await discoverIngredients([input], discoverOptions(options, terminal));
  if (ingredients.length !== 1) {
    throw new UsageError(`${input} holds ${ingredients.length} checkpoints; soup eval scores one (use soup compare for several)`);
  }
  const [checkpoint] = await openAll(ingredients);
  try {
    const { evaluator, dataset, backend, warnings, slurm } = await createEvaluator(options, checkpoint!, undefined, terminal.progress());
    for (const warning of warnings ?? []) terminal.warn(warning);
    let evaluation;
    try {
      evaluation = await evaluator.evaluate(ingredientWeights(checkpoint!), signal);
    } finally {
      await evaluator.dispose();
    }
    const n = evaluation.n ?? null;
    if (terminal.json) {
      terminal.printJson({ checkpoint: checkpoint!.path, n, backend, metrics: evaluation.metrics, ...(slurm === undefined ? {} : { slurmJobs: slurm.records }) });
      return;
    }
    const on = dataset === undefined ? `\`${options.evalCmd}\`` : `${dataset.name} (${dataset.n} samples)`;
    terminal.print(`${terminal.paint.bold(checkpoint!.name)} on ${on}, ${evaluator.description}`);
    for (const line of table(Object.entries(evaluation.metrics).map(([metric, value]) => [metric, formatScore(value)]), [false, true])) {
      terminal.print(`  ${line}`);
    }
  } finally {
    await closeAll([checkpoint!]);
  }
}
