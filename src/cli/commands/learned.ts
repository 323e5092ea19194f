import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError } from '../../errors.js';
import type { Evaluator, GradientSource } from '../../eval/evaluator.js';
import { scoreIngredients } from '../../eval/pool.js';
import { printLearned, type LearnedDocument } from '../../report/learned.js';
import { Terminal } from '../../report/terminal.js';
import { openIngredients } from '../../soup/ingredients.js';
import { LEARNED_DEFAULTS, LearnedSoup, trainLearnedSoup, type LearnedParams } from '../../soup/strategies/learned.js';
import { Mixer } from '../../soup/kernel/mix.js';
import { prepareModelFiles, prepareOutput, writeSoup } from '../../soup/write.js';
import { refuseOverMemory } from '../search-common.js';
import { scanDiverged } from '../diverged.js';
import { createEvaluator } from '../../eval/create.js';
import { evaluationOptions } from '../evaluation.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';

/** "8G", "512MB", "1.5GiB", "1000000": a size in bytes (k, M, G, T as powers of 1024). */
const sizeOption = z.string().transform((text, context): number => {
  const match = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(text.trim());
  if (match === null) {
    context.addIssue({ code: 'custom', message: `"${text}" is not a size (e.g. 8G, 512M or a number of bytes)` });
    return z.NEVER;
  }
  return Math.round(Number(match[1]) * 1024 ** ' kmgt'.indexOf(match[2]!.toLowerCase() || ' '));
});

const positive = z.coerce.number().finite().positive();

const schema = commonOptions
  .extend(evaluationOptions.shape)
  .extend(soupOutputOptions.shape)
  .extend({
    batchSize: z.coerce.number().int().positive().default(LEARNED_DEFAULTS.batchSize),
    lr: positive.default(LEARNED_DEFAULTS.lr),
    epochs: z.coerce.number().int().min(0).default(LEARNED_DEFAULTS.epochs),
    seed: z.coerce.number().int().min(0).default(LEARNED_DEFAULTS.seed),
    byModel: z.boolean().default(LEARNED_DEFAULTS.byModel),
    weightDecay: z.coerce.number().finite().min(0).default(LEARNED_DEFAULTS.weightDecay),
    adamBeta1: z.coerce.number().min(0).lt(1).default(LEARNED_DEFAULTS.adamBeta1),
    adamBeta2: z.coerce.number().min(0).lt(1).default(LEARNED_DEFAULTS.adamBeta2),
    adamEps: positive.default(LEARNED_DEFAULTS.adamEps),
    initialBeta: z.coerce.number().finite().default(LEARNED_DEFAULTS.initialBeta),
    maxMemory: sizeOption.optional(),
    // The gradient-free search (ONNX Runtime, --eval-cmd): learned-search.ts.
    by: z.enum(['ingredient', 'block']).optional(),
    blocks: z.coerce.number().int().positive().optional(),
    evaluations: z.coerce.number().int().positive().default(200),
    population: z.coerce.number().int().min(2).optional(),
    sigma: positive.default(1),
    objective: z.string().min(1).optional(),
    scoreCache: z.string().min(1).optional(),
    layerPattern: z.string().min(1).optional(),
  });

/** Options that only the gradient-free search reads, refused by name on the gradient path. */
const SEARCH_ONLY = ['by', 'blocks', 'population', 'objective', 'scoreCache'] as const;

/** The gradient path trains through the model's gradients, which only TF.js models give soup. */
function checkTrainable(options: { model?: string | undefined }, reference: Checkpoint): void {
  if (options.model !== undefined && !/\.json$/i.test(options.model)) {
    throw new UsageError(
      `--model ${options.model}: soup learned trains TF.js models (model.json) by gradients and searches ONNX models (.onnx) without them; this model is neither`,
      {
        hint: 'pass --model model.json or --model model.onnx whose weight names match the tensors, or score with --eval-cmd CMD',
      },
    );
  }
  if (reference.format !== 'tfjs' && options.model === undefined) {
    throw new UsageError(`${reference.path}: soup learned needs a model to run, and a ${reference.format} checkpoint has none`, {
      hint: `pass --model model.json (a TF.js model, trained by gradients) or --model model.onnx (searched without gradients), whose weight names match the tensors; or score with --eval-cmd CMD`,
    });
  }
}

function gradientSource(evaluator: Evaluator): Evaluator & GradientSource {
  if (!('lossGradients' in evaluator)) {
    throw new UsageError(`soup learned needs gradients of the loss, and ${evaluator.description} gives only scores`, {
      hint: 'make a greedy soup instead, which needs only scores: soup greedy INPUTS --val DATA (or --eval-cmd CMD) -o OUT',
    });
  }
  return evaluator as Evaluator & GradientSource;
}

export async function runLearned(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  try {
    const reference = checkpoints[0]!;
    // Models soup can only score are searched without gradients (CMA-ES over the mixing weights).
    if (options.evalCmd !== undefined || reference.format === 'onnx' || options.model?.endsWith('.onnx') === true) {
      const { runLearnedSearch } = await import('./learned-search.js');
      await runLearnedSearch(inputs, options, checkpoints, terminal, signal, started);
      return;
    }
    checkTrainable(options, reference);
    const searchOnly = SEARCH_ONLY.find((key) => options[key] !== undefined);
    if (searchOnly !== undefined) {
      throw new UsageError(
        `--${searchOnly.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)} belongs to the gradient-free search (ONNX models, --eval-cmd); ${reference.path} is a TF.js model, trained by gradient descent`,
        {
          hint: 'leave it out, or score an ONNX export (--model model.onnx) to search without gradients',
        },
      );
    }
    if (checkpoints.length < 2) throw new UsageError(`a learned soup mixes at least 2 ingredients; ${inputs.join(', ')} holds ${checkpoints.length}`);
    const diverged = await scanDiverged(checkpoints, { allowNonfinite: options.allowNonfinite, leftOutOf: 'the soup' }, terminal, signal);
    // Diverged runs are scored but never mixed: a learned soup cannot train through NaN weights.
    const mixed = checkpoints.filter((checkpoint) => !diverged.has(checkpoint));
    if (mixed.length < 2) {
      throw new UsageError(
        `a learned soup mixes at least 2 ingredients; only ${mixed.length} of the ${checkpoints.length} did not diverge (${[...diverged.keys()].map((c) => c.name).join(', ')} hold non-finite weights)`,
        {
          hint: 'add finite runs, or score them with soup compare, which ranks diverged runs last',
        },
      );
    }
    const memory = refuseOverMemory(mixed, options.maxMemory, inputs);
    const output = await prepareOutput(checkpoints, {
      out: options.output,
      force: options.force,
      dtype: options.dtype,
      shardSize: options.outShardSize,
      protect: [options.model, options.val],
    });
    for (const warning of await prepareModelFiles(checkpoints, output, options)) terminal.warn(warning);
    const params: LearnedParams = {
      lr: options.lr,
      epochs: options.epochs,
      batchSize: options.batchSize,
      seed: options.seed,
      byModel: options.byModel,
      weightDecay: options.weightDecay,
      adamBeta1: options.adamBeta1,
      adamBeta2: options.adamBeta2,
      adamEps: options.adamEps,
      initialBeta: options.initialBeta,
    };
    const { evaluator, dataset, backend, tfjs, direction, warnings } = await createEvaluator(options, reference);
    for (const warning of warnings ?? []) terminal.warn(warning);
    const progress = terminal.progress();
    let trained;
    try {
      const ingredientScores = await scoreIngredients(checkpoints, evaluator, tfjs, {
        metric: options.metric,
        jobs: options.jobs,
        // Diverged ingredients were found above: they are scored as they are.
        allowNonFinite: true,
        signal,
        onProgress: (done, total, candidate) => progress({ kind: 'score', done, total, candidate }),
      });
      const soup = await LearnedSoup.load(mixed, params, signal);
      const score = async (): Promise<number> => (await evaluator.evaluate(soup.weights(), signal)).metrics[options.metric]!;
      const uniformScore = await score();
      const epochs = await trainLearnedSoup(soup, gradientSource(evaluator), { signal, onProgress: progress });
      trained = { soup, epochs, uniformScore, score: await score(), scores: ingredientScores.scores, jobs: ingredientScores.jobs };
    } finally {
      terminal.endProgress();
      await evaluator.dispose();
    }
    const { soup, epochs, uniformScore, scores } = trained;
    const chosen = mixed.map((checkpoint) => checkpoint.name);
    const weights = soup.weightsByTensor();
    const mixer = new Mixer(mixed, { signal, onProgress: progress });
    const written = await writeSoup(
      checkpoints,
      output,
      mixer.producer(soup.coefficients(), { normalize: false, plan: output.tensors }),
      {
        strategy: 'learned',
        chosen,
        scores,
        extra: {
          metric: options.metric,
          direction,
          score: trained.score,
          ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
          validation: dataset?.path,
          hyperparameters: { optimizer: 'AdamW', ...params },
          beta: soup.beta,
          weights,
          epochs,
          ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
        },
        command: commandArguments(),
      },
      signal,
    );
    terminal.endProgress();
    const document: LearnedDocument = {
      strategy: 'learned',
      metric: options.metric,
      direction,
      backend,
      jobs: trained.jobs,
      ingredients: checkpoints.map((checkpoint, k) => {
        const divergence = diverged.get(checkpoint);
        return { name: checkpoint.name, path: checkpoint.path, score: scores[k]!, ...(divergence === undefined ? {} : { diverged: divergence }) };
      }),
      steps: [],
      chosen,
      leftOut: [...diverged.keys()].map((checkpoint) => checkpoint.name),
      score: trained.score,
      evaluations: checkpoints.length + 2,
      uniformScore,
      output: written.path,
      weights,
      beta: soup.beta,
      epochs,
      hyperparameters: params,
      samples: dataset?.n ?? null,
      memoryBytes: memory,
      seconds: Number(((performance.now() - started) / 1000).toFixed(3)),
      warnings: terminal.warnings,
    };
    if (terminal.json) terminal.printJson(document);
    else printLearned(terminal, document, { source: `${dataset!.name} (${dataset!.n} samples)`, evaluator: evaluator.description, format: output.target.kind });
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
