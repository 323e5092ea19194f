import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { candidateProducer } from '../../eval/evaluator.js';
import { higherIsBetter } from '../../eval/metrics.js';
import { scoreIngredients } from '../../eval/pool.js';
import { greedySoup } from '../../soup/greedy.js';
import { openIngredients } from '../../soup/ingredients.js';
import { prepareOutput, writeSoup } from '../../soup/write.js';
import { formatSeconds, table } from '../../report/format.js';
import { formatScore } from '../../report/scores.js';
import { Terminal } from '../../report/terminal.js';
import { createEvaluator, evaluationOptions } from '../evaluation.js';
import { commonOptions, dtypeOption, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  output: z.string({ required_error: 'is required: where to write the soup' }).min(1),
  dtype: dtypeOption,
  force: z.boolean().default(false),
  acceptTies: z.boolean().default(false),
  allowNonfinite: z.boolean().default(false),
  /** commander's --no-prune sets prune: false. */
  prune: z.boolean().default(true),
}).transform((options) => ({ ...options, noPrune: !options.prune }));

export async function runGreedy(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const checkpoints = await openIngredients(inputs);
  try {
    const reference = checkpoints[0]!;
    const output = await prepareOutput(reference, { out: options.output, force: options.force, dtype: options.dtype });
    const { evaluator, dataset, backend, tfjs } = await createEvaluator(options, reference);
    let result;
    let jobs = 1;
    try {
      const progress = terminal.progress();
      const total = checkpoints.length * 2 - 1;
      const ingredientScores = await scoreIngredients(checkpoints, evaluator, tfjs, {
        metric: options.metric,
        jobs: options.jobs,
        allowNonFinite: options.allowNonfinite,
        signal,
        onProgress: (done, _total, candidate) => progress({ kind: 'score', done, total, candidate }),
      });
      jobs = ingredientScores.jobs;
      result = await greedySoup(
        checkpoints,
        async (candidate, _label, bound) => {
          const evaluation = await evaluator.evaluate(candidate, signal, bound === undefined || options.noPrune ? undefined : { metric: options.metric, ...bound });
          return { score: evaluation.metrics[options.metric]!, pruned: evaluation.pruned ?? false, scored: evaluation.scored ?? 0, total: evaluation.n ?? 0 };
        },
        {
          metric: options.metric,
          acceptTies: options.acceptTies,
          allowNonFinite: options.allowNonfinite,
          signal,
          scores: ingredientScores.scores,
          onProgress: (event) => progress(event.kind === 'score' ? { ...event, done: event.done + checkpoints.length, total } : event),
        },
      );
      result.evaluations += checkpoints.length;
      result.samplesScored += ingredientScores.samples;
    } finally {
      terminal.endProgress();
      await evaluator.dispose();
    }
    const chosen = result.soup.chosen.map((checkpoint) => checkpoint.name);
    const steps = result.steps;
    const written = await writeSoup(checkpoints, output, candidateProducer(result.soup.weights()), {
      strategy: 'greedy',
      chosen,
      scores: result.scores,
      extra: {
        metric: options.metric,
        score: result.score,
        validation: dataset?.path ?? options.evalCmd,
        acceptTies: options.acceptTies,
        steps,
        ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
      },
    }, signal);
    const seconds = (performance.now() - started) / 1000;
    const ingredients = checkpoints.map((checkpoint, k) => ({ name: checkpoint.name, path: checkpoint.path, score: result.scores[k]! }));
    if (terminal.json) {
      terminal.printJson({
        strategy: 'greedy',
        metric: options.metric,
        backend,
        jobs,
        ingredients,
        steps,
        chosen,
        score: result.score,
        output: written.path,
        evaluations: result.evaluations,
        samples: dataset?.n ?? null,
        samplesScored: result.samplesScored,
        samplesSaved: result.samplesSaved,
        seconds: Number(seconds.toFixed(3)),
        warnings: terminal.warnings,
      });
      return;
    }
    const { paint } = terminal;
    const sign = higherIsBetter(options.metric) ? -1 : 1;
    const ranked = [...ingredients].sort((a, b) => sign * (a.score - b.score) || (a.name < b.name ? -1 : 1));
    const best = ranked[0]!;
    const source = dataset === undefined ? `\`${options.evalCmd}\`` : `${dataset.name} (${dataset.n} samples)`;
    terminal.print(`${paint.bold('Greedy soup')} of ${checkpoints.length} ingredients, ${options.metric} on ${source}, ${evaluator.description}`);
    terminal.print();
    terminal.print('Ingredients, best first:');
    for (const line of table(ranked.map((i) => [i.name, formatScore(i.score)]), [false, true])) terminal.print(`  ${line}`);
    terminal.print();
    terminal.print('Steps:');
    let current = best.score;
    const rows = [[paint.dim('candidate'), paint.dim('score'), paint.dim('change'), ''], [best.name, formatScore(best.score), '', 'start']];
    for (const step of steps) {
      const change = step.score - current;
      if (step.pruned) {
        const bound = higherIsBetter(options.metric) ? '<=' : '>=';
        rows.push([step.candidate, `${bound} ${formatScore(step.score)}`, '', paint.dim('left out (stopped early)')]);
      } else {
        rows.push([step.candidate, formatScore(step.score), `${change >= 0 ? '+' : ''}${formatScore(change)}`, step.accepted ? paint.green('kept') : paint.dim('left out')]);
      }
      if (step.accepted) current = step.score;
    }
    for (const line of table(rows, [false, true, true, false])) terminal.print(`  ${line}`);
    terminal.print();
    const gain = result.score - best.score;
    terminal.print(`Chosen: ${chosen.join(', ')} (${chosen.length} of ${checkpoints.length})`);
    terminal.print(`Score:  ${paint.bold(formatScore(result.score))} ${options.metric} (best ingredient ${formatScore(best.score)}, ${gain >= 0 ? '+' : ''}${formatScore(gain)})`);
    if (result.samplesSaved > 0) {
      const share = ((100 * result.samplesSaved) / (result.samplesSaved + result.samplesScored)).toFixed(0);
      terminal.print(`Early stopping skipped ${result.samplesSaved} of ${result.samplesSaved + result.samplesScored} sample evaluations (${share}%), with the same decisions.`);
    }
    terminal.print(`Wrote:  ${paint.cyan(written.path)} (${output.target.kind}; recipe and every score in its metadata) in ${formatSeconds(seconds)}`);
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
