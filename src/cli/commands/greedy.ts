import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import type { Evaluator } from '../../eval/evaluator.js';
import { knownDirection } from '../../eval/metrics.js';
import { scoreIngredients } from '../../eval/pool.js';
import { printGreedy, type GreedyDocument } from '../../report/greedy.js';
import { Terminal } from '../../report/terminal.js';
import { candidateProducer } from '../../weights/candidate.js';
import { greedySoup } from '../../soup/strategies/greedy.js';
import { MethodSoup } from '../../soup/merge/engine.js';
import { JournaledEvaluator } from '../../eval/score-cache.js';
import { describeModelFiles, prepareModelFiles, prepareOutput, writeSoup } from '../../soup/write.js';
import { scanDiverged } from '../diverged.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { openSearchJournal } from '../search-common.js';
import { openGreedyMethod, type GreedyMethod } from '../greedy-method.js';
import { mergeOptions } from '../merge-options.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';

const schema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend(mergeOptions.shape)
  .extend({
    acceptTies: z.boolean().default(false),
    /** commander's --no-prune sets prune: false. */
    prune: z.boolean().default(true),
    scoreCache: z.string().min(1).optional(),
  });

export async function runGreedy(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const { checkpoints, method, all } = await openGreedyMethod(inputs, options, signal, discoverOptions(options, terminal));
  try {
    const reference = method?.base ?? checkpoints[0]!;
    const output = await prepareOutput(method === undefined ? checkpoints : [reference], {
      out: options.output,
      force: options.force,
      dtype: options.dtype,
      shardSize: options.outShardSize,
      protect: [...all.map((checkpoint) => checkpoint.path), options.model, options.val],
    });
    for (const warning of await prepareModelFiles(checkpoints, output, options)) terminal.warn(warning);
    const setup = await createEvaluator(options, reference, undefined, terminal.progress());
    for (const warning of setup.warnings ?? []) terminal.warn(warning);
    const { dataset, backend, tfjs, direction } = setup;
    // Bounds for early stopping assume the built-in metric's own direction.
    const prune = options.prune && knownDirection(options.metric) === direction;
    let diverged;
    try {
      diverged = await scanDiverged(checkpoints, { allowNonfinite: options.allowNonfinite, leftOutOf: 'the soup' }, terminal, signal);
    } catch (error) {
      await setup.evaluator.dispose();
      throw error;
    }
    let evaluator: Evaluator = setup.evaluator;
    if (options.scoreCache !== undefined) {
      try {
        evaluator = (await openSearchJournal(setup, options.scoreCache, checkpoints, terminal, signal)).evaluator;
      } catch (error) {
        await evaluator.dispose();
        throw error;
      }
    }
    let result;
    let jobs = 1;
    try {
      const progress = terminal.progress();
      // One score per ingredient, one per step; no step tries a diverged ingredient.
      const total = checkpoints.length * 2 - 1 - diverged.size;
      // Under a method, an ingredient alone is scored as the method ships it (ties: the base plus its trimmed delta).
      const ingredientScores =
        method !== undefined
          ? undefined
          : await scoreIngredients(checkpoints, evaluator, tfjs, {
              metric: options.metric,
              jobs: options.jobs,
              // Diverged ingredients were found above: they are scored as they are.
              allowNonFinite: true,
              signal,
              onProgress: (done, _total, candidate, status) => progress({ kind: 'score', done, total, candidate, ...status }),
            });
      jobs = ingredientScores?.jobs ?? 1;
      const soup = method === undefined ? undefined : new MethodSoup(method.plan, method.parametersOf);
      result = await greedySoup(
        checkpoints,
        async (candidate, label, bound, stop) => {
          // The journal answers synchronously, before evaluate's first await: a hit shows at once.
          const hits = evaluator instanceof JournaledEvaluator ? evaluator.hits : 0;
          const pending = evaluator.evaluate(
            candidate,
            stop ?? signal,
            bound === undefined || !prune ? undefined : { metric: options.metric, direction, ...bound },
            { label },
          );
          const cached = evaluator instanceof JournaledEvaluator && evaluator.hits > hits;
          const evaluation = await pending;
          return {
            score: evaluation.metrics[options.metric]!,
            pruned: evaluation.pruned ?? false,
            scored: evaluation.scored ?? 0,
            total: evaluation.n ?? 0,
            cached,
          };
        },
        {
          metric: options.metric,
          direction,
          exclude: new Set(diverged.keys()),
          acceptTies: options.acceptTies,
          allowNonFinite: options.allowNonfinite,
          signal,
          lookahead: lookaheadSlots(evaluator, options.jobs),
          ...(ingredientScores === undefined ? {} : { scores: ingredientScores.scores }),
          ...(soup === undefined ? {} : { soup, single: (checkpoint) => soup.weights(checkpoint) }),
          onProgress: (event) =>
            progress(event.kind === 'score' && ingredientScores !== undefined ? { ...event, done: event.done + checkpoints.length, total } : event),
        },
      );
      if (ingredientScores !== undefined) {
        result.evaluations += checkpoints.length;
        result.samplesScored += ingredientScores.samples;
      }
    } finally {
      terminal.endProgress();
      await evaluator.dispose();
    }
    const chosen = result.soup.chosen.map((checkpoint) => checkpoint.name);
    const steps = result.steps;
    const produce = result.soup instanceof MethodSoup ? result.soup.merge().producer() : candidateProducer(result.soup.weights());
    const written = await writeSoup(
      all,
      output,
      produce,
      {
        strategy: 'greedy',
        chosen,
        scores: result.scores,
        extra: {
          metric: options.metric,
          direction,
          score: result.score,
          ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
          validation: dataset?.path ?? options.evalCmd,
          acceptTies: options.acceptTies,
          steps,
          ...(method === undefined ? {} : methodRecord(method)),
          ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
        },
        command: commandArguments(),
      },
      signal,
    );
    const seconds = (performance.now() - started) / 1000;
    const document: GreedyDocument = {
      strategy: 'greedy',
      ...(method === undefined ? {} : { method: method.plan.method.name, ...(method.base === undefined ? {} : { base: method.base.name }) }),
      metric: options.metric,
      direction,
      backend,
      jobs,
      ingredients: checkpoints.map((checkpoint, k) => {
        const divergence = diverged.get(checkpoint);
        return { name: checkpoint.name, path: checkpoint.path, score: result.scores[k]!, ...(divergence === undefined ? {} : { diverged: divergence }) };
      }),
      steps,
      chosen,
      leftOut: result.leftOut.map((checkpoint) => checkpoint.name),
      score: result.score,
      output: written.path,
      evaluations: result.evaluations,
      // Scores taken from the journal for candidates scored ahead and not needed are not evaluations of this soup.
      evaluationsFromCache: evaluator instanceof JournaledEvaluator ? evaluator.hits - (result.evaluationsWastedCached ?? 0) : 0,
      ...(result.evaluationsWasted === undefined ? {} : { evaluationsWasted: result.evaluationsWasted }),
      ...(setup.slurm === undefined ? {} : { slurmJobs: setup.slurm.records }),
      samples: dataset?.n ?? null,
      samplesScored: result.samplesScored,
      samplesSaved: result.samplesSaved,
      seconds: Number(seconds.toFixed(3)),
      warnings: terminal.warnings,
    };
    if (terminal.json) terminal.printJson(document);
    else {
      const source = dataset === undefined ? (options.val ?? "the command's own data") : `${dataset.name} (${dataset.n} samples)`;
      printGreedy(terminal, document, {
        source,
        evaluator: evaluator.description,
        format: output.target.kind,
        scoreCache: options.scoreCache,
        modelFiles: describeModelFiles(output),
      });
    }
  } finally {
    terminal.endProgress();
    await closeAll(all);
  }
}

/**
 * Evaluations greedy's steps may run at once: a concurrent evaluator (--eval-cmd) scores the next
 * steps' candidates ahead in idle slots, at most three levels deep (7), since each level doubles the jobs.
 */
function lookaheadSlots(evaluator: Evaluator, jobs: number | undefined): number {
  if (evaluator.concurrent !== true) return 1;
  const slots = jobs ?? (Number.isFinite(evaluator.parallelism) ? (evaluator.parallelism ?? 1) : 3);
  return Math.min(slots, 7);
}

function methodRecord(method: GreedyMethod): Record<string, unknown> {
  return { method: method.plan.method.name, base: method.base?.name ?? null, parameters: method.parameters, randomSeed: method.plan.seed };
}
