import { z } from 'zod';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import { closeAll, discoverIngredients, nameTogether, openAll } from '../../checkpoint/discover.js';
import { IncompatibleError, UsageError } from '../../errors.js';
import { checkOnnxIngredients } from '../../checkpoint/onnx/compatible.js';
import { describeDirection, higherIsBetter } from '../../eval/metrics.js';
import { describeDivergence, findNonFinite, type Divergence } from '../../soup/diverged.js';
import { printInterpolation, type InterpolationDocument } from '../../report/interpolate.js';
import { linePlot } from '../../report/line-plot.js';
import { writeReport } from '../../report/output.js';
import { Terminal } from '../../report/terminal.js';
import { isBarrier, largestDip, scoreInterpolation, verdictPossible } from '../../soup/strategies/interpolate.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  steps: z.coerce.number().int().min(2, 'must be at least 2 (the two end points)').max(1001).default(11),
  plot: z.string().min(1).optional(),
  allowFused: z.boolean().default(false),
  allowNonfinite: z.boolean().default(false),
});

export async function runInterpolate(first: string, second: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const ingredients = [];
  for (const input of [first, second]) {
    const found = await discoverIngredients([input], discoverOptions(options, terminal));
    if (found.length !== 1) throw new UsageError(`${input} holds ${found.length} checkpoints; soup interpolate goes from one checkpoint to another`);
    ingredients.push(found[0]!);
  }
  // Two runs' checkpoint-20 are told apart by their runs, as in every other command.
  nameTogether(ingredients);
  const checkpoints = await openAll(ingredients);
  const [a, b] = checkpoints as [(typeof checkpoints)[number], (typeof checkpoints)[number]];
  try {
    await checkOnnxIngredients([a, b], { allowFused: options.allowFused });
    const problems = findIncompatibilities([a, b]);
    if (problems.length > 0) throw new IncompatibleError(problems);
    const { evaluator, dataset, backend, direction, slurm, warnings } = await createEvaluator(options, a, undefined, terminal.progress());
    for (const warning of warnings ?? []) terminal.warn(warning);
    const progress = terminal.progress();
    let points;
    const diverged: (Divergence & { name: string; path: string })[] = [];
    try {
      // As soup eval does: --allow-nonfinite scores the weights as they are, without looking for NaN first.
      for (const checkpoint of options.allowNonfinite ? [] : [a, b]) {
        const divergence = await findNonFinite(checkpoint, signal);
        if (divergence === undefined) continue;
        diverged.push({ name: checkpoint.name, path: checkpoint.path, ...divergence });
        terminal.warn(
          `${checkpoint.name} diverged: ${describeDivergence(divergence)}; every point it weighs in holds non-finite weights, so no basin verdict is given`,
        );
      }
      points = await scoreInterpolation(
        a,
        b,
        options.steps,
        async (candidate, stop) => (await evaluator.evaluate(candidate, stop ?? signal)).metrics[options.metric]!,
        {
          signal,
          onProgress: progress,
          // Commands (a cluster's jobs above all) score the points at once, as --jobs allows.
          jobs: evaluator.concurrent === true ? (options.jobs ?? evaluator.parallelism ?? 1) : 1,
          diverged: { a: diverged.some((d) => d.path === a.path), b: diverged.some((d) => d.path === b.path) },
        },
      );
    } finally {
      terminal.endProgress();
      await evaluator.dispose();
    }
    // A dip measured through NaN weights or scores says nothing about basins.
    const judged = verdictPossible(points);
    const dip = judged ? largestDip(points, higherIsBetter(direction)) : null;
    const source = dataset === undefined ? (options.val ?? "the command's own data") : `${dataset.name} (${dataset.n} samples)`;
    const document: InterpolationDocument = {
      a: a.path,
      b: b.path,
      names: [a.name, b.name],
      metric: options.metric,
      direction,
      backend,
      points,
      dip,
      barrier: dip === null ? null : isBarrier(dip.dip, options.metric, points, dataset?.n),
      ...(diverged.length === 0 ? {} : { diverged }),
      samples: dataset?.n ?? null,
      ...(options.plot === undefined ? {} : { plot: options.plot }),
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      warnings: terminal.warnings,
      ...(slurm === undefined ? {} : { slurmJobs: slurm.records }),
    };
    if (options.plot !== undefined) {
      await writeReport(
        options.plot,
        linePlot({
          title: `From ${a.name} to ${b.name}`,
          xTitle: `t: (1 - t) ${a.name} + t ${b.name}`,
          yTitle: `${options.metric} (${describeDirection(direction)}) on ${dataset?.name ?? 'the --eval-cmd data'}`,
          points: points.map((point) => ({ x: point.t, y: point.score, ...(point.diverged === true ? { hollow: true } : {}) })),
          ends: [a.name, b.name],
          chord: judged,
        }),
      );
    }
    if (terminal.json) terminal.printJson(document);
    else printInterpolation(terminal, document, { names: [a.name, b.name], source, evaluator: evaluator.description });
  } finally {
    await closeAll(checkpoints);
  }
}
