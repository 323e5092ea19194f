/**
 * The command line: every command, its flags (built from cli/flags.ts) and its help with examples.
 * A command's module is imported only when that command runs, so `--help` loads none.
 */
import { Command, Option } from 'commander';
import { TOOL_VERSION } from '../version.js';
import {
  collect,
  examples,
  shared,
  withCommonOptions,
  withDefault,
  withEvaluationOptions,
  withMergeOptions,
  withPreprocessingOptions,
  withSoupOutputOptions,
} from './flags.js';

export function buildProgram(signal: AbortSignal): Command {
  const program = new Command('soup')
    .description(
      'Make model soups: average the weights of checkpoints fine-tuned from one pretrained model ' +
        '(Wortsman et al., "Model soups", ICML 2022). One model, same inference cost, often more accurate.',
    )
    .version(TOOL_VERSION, '-V, --version')
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`soup: ${text.replace(/^error: /, 'error: ')}`) })
    .addHelpText(
      'after',
      examples([
        'soup uniform ./ckpts -o soup.safetensors',
        'soup greedy ./ckpts --val data/val -o soup',
        'soup eval soup --val data/test.npz --json',
        'soup inspect ./ckpts',
        'soup merge ties.yml -o merged',
      ]) +
        '\nInputs are .safetensors files, sharded safetensors folders (model.safetensors.index.json),\n' +
        'PyTorch files (.pt, .pth, .bin, .ckpt; read without running pickled code) and pytorch_model.bin folders,\n' +
        'TF.js LayersModel folders (model.json), .onnx models, or folders holding any of these.\n' +
        '\nExit codes: 0 success, 1 internal error, 2 bad usage or input, 3 CI gate failed, 130 interrupted.\n',
    );
  // In the order --help lists them.
  for (const declare of [
    declareUniform,
    declareGreedy,
    declareLearned,
    declareEvolve,
    declareInterpolate,
    declareMerge,
    declareEval,
    declareCompare,
    declareDiff,
    declareInspect,
    declareCard,
    declareData,
  ])
    declare(program, signal);
  return program;
}

function declareUniform(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withSoupOutputOptions(
      program
        .command('uniform')
        .summary('average every ingredient with equal weight')
        .description('The uniform soup: the element-wise mean of every ingredient, streamed tensor by tensor.')
        .argument('<inputs...>', 'checkpoints, or folders of checkpoints'),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup uniform ./ckpts -o soup.safetensors',
        'soup uniform run-a.safetensors run-b.safetensors --dtype bf16 -o soup.safetensors',
        'soup uniform ./tfjs-runs -o ./soup   # a TF.js model folder',
        'soup uniform ./ckpts -o soup.safetensors --json | jq .chosen',
      ]),
    )
    .action(async (inputs: string[], options: unknown) => {
      const { runUniform } = await import('./commands/uniform.js');
      await runUniform(inputs, options, signal);
    });
}

function declareGreedy(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withSoupOutputOptions(
      withMergeOptions(
        withEvaluationOptions(
          program
            .command('greedy')
            .summary('add ingredients best first, keeping each only if the validation score improves')
            .description(
              'The greedy soup (Wortsman et al., 2022): score every ingredient, sort best first, start from the best, and add each ' +
                "next ingredient only if the soup's score goes up (strictly, as in the paper's code; --accept-ties also keeps equal scores).",
            )
            .argument('<inputs...>', 'checkpoints, or folders of checkpoints')
            .addOption(shared.acceptTies())
            .option('--no-prune', 'score every candidate on every sample (by default scoring stops once a candidate cannot win)')
            .addOption(shared.scoreCache()),
        ),
      ),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup greedy ./ckpts --val data/val -o soup',
        'soup greedy ./ckpts --val val.npz --metric loss -o soup',
        'soup greedy ./ckpts --eval-cmd "python eval.py {ckpt}" -o soup.safetensors',
        'soup greedy runs --eval-cmd "srun --gres=gpu:1 python eval.py {ckpt}" --jobs 8 --work-dir $SCRATCH --score-cache soup-scores.jsonl -o soup',
        'soup greedy fixtures/ingredients --val fixtures/data/val -o soup --json',
        'soup greedy ./ckpts --val val.npz --method ties --base base.safetensors --density 0.5 -o soup',
        'soup greedy fixtures/onnx --val fixtures/data/val -o soup.onnx',
        'soup greedy ./runs --val val.npz --model model.onnx -o soup.safetensors',
      ]),
    )
    .action(async (inputs: string[], options: unknown) => {
      const { runGreedy } = await import('./commands/greedy.js');
      await runGreedy(inputs, options, signal);
    });
}

function declareLearned(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withSoupOutputOptions(
      withEvaluationOptions(
        program
          .command('learned')
          .summary('learn mixing weights on validation data: by gradient descent (TF.js models) or by CMA-ES (ONNX, --eval-cmd)')
          .description(
            'The learned soup (Wortsman et al., 2022, appendix I, as learned_bylayer.py runs it): per tensor, sum over ingredients of ' +
              'alpha * weights, alpha = softmax of one logit per ingredient (starting equal), the logits scaled by a learned beta; ' +
              'trained with AdamW on the cross-entropy of --val. Needs gradients, so TF.js models; holds every ingredient in memory.',
          )
          .argument('<inputs...>', 'checkpoints, or folders of checkpoints')
          .addOption(withDefault('--lr <x>', 'AdamW learning rate', '0.05'))
          .addOption(withDefault('--epochs <n>', 'passes over the validation set', '5'))
          .addOption(withDefault('--seed <n>', 'seed of the batch shuffling', '0'))
          .option('--by-model', 'one weight per ingredient for the whole model, instead of one per tensor')
          .addOption(withDefault('--weight-decay <x>', 'AdamW weight decay', '0'))
          .addOption(withDefault('--adam-beta1 <x>', 'AdamW beta1', '0.9'))
          .addOption(withDefault('--adam-beta2 <x>', 'AdamW beta2', '0.999'))
          .addOption(withDefault('--adam-eps <x>', 'AdamW epsilon', '1e-8'))
          .addOption(withDefault('--initial-beta <x>', 'starting value of the logit scale beta', '1'))
          .option('--max-memory <size>', 'refuse when the ingredients need more memory than this, e.g. 8G (default: half the RAM)')
          .addOption(
            new Option(
              '--by <what>',
              'ONNX models and --eval-cmd (searched by CMA-ES, no gradients): one weight per ingredient, or per ingredient and block of layers (default: ingredient)',
            ).choices(['ingredient', 'block']),
          )
          .option('--blocks <k>', 'with --by block: join the layers into k blocks (default: one block per layer)')
          .addOption(withDefault('--evaluations <n>', 'search budget: candidates scored, the uniform soup included (ONNX, --eval-cmd)', '200'))
          .option('--population <p>', 'candidates per CMA-ES generation (default: 4 + 3 ln(dimensions))')
          .addOption(withDefault('--sigma <x>', 'CMA-ES starting step size on the logits', '1'))
          .option('--objective <metric>', 'what the search ranks candidates by (default: loss where the evaluator measures it, else --metric)')
          .addOption(shared.scoreCache())
          .addOption(shared.layerPattern()),
        { help: 'samples per training batch (and per scoring batch)', default: '256' },
      ),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup learned fixtures/ingredients --val fixtures/data/val -o learned-soup',
        'soup learned ./ckpts --val val.npz --epochs 10 --lr 0.02 --seed 1 -o soup',
        'soup learned ./ckpts --val val.npz --by-model -o soup --json | jq .weights',
        'soup learned ./ckpts --model model.json --val val.npz -o soup.safetensors --max-memory 16G',
        'soup learned fixtures/onnx --val fixtures/data/val --evaluations 400 --seed 1 -o learned.onnx',
        'soup learned ./runs --eval-cmd "python eval.py {ckpt}" --by block --blocks 4 --evaluations 40 --jobs 4 --score-cache scores.jsonl -o soup',
      ]),
    )
    .action(async (inputs: string[], options: unknown) => {
      const { runLearned } = await import('./commands/learned.js');
      await runLearned(inputs, options, signal);
    });
}

function declareEvolve(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withSoupOutputOptions(
      withEvaluationOptions(
        program
          .command('evolve')
          .summary("search a mergekit recipe's parameter ranges (weight: {min: 0, max: 1}) with CMA-ES on any evaluator")
          .description(
            'Evolutionary merging (as mergekit-evolve): a mergekit YAML recipe whose parameters may be ranges, {min, max}, per model, ' +
              'globally, per layer block (a gradient of ranges) or per filter, for any merge method. CMA-ES searches the ranges, each ' +
              'candidate merged and scored on --val (TF.js, ONNX Runtime) or by --eval-cmd; the best is written with its card and the ' +
              'recipe found as a plain mergekit config, which soup merge makes again.',
          )
          .argument('<config>', 'a mergekit YAML recipe with ranges')
          .addOption(withDefault('--evaluations <n>', 'search budget: candidates scored, the middle of every range included', '200'))
          .option('--population <p>', 'candidates per CMA-ES generation (default: 4 + 3 ln(ranges))')
          .addOption(withDefault('--seed <n>', 'seed of the search', '0'))
          .addOption(withDefault('--sigma <x>', 'CMA-ES starting step, as a fraction of each range', '0.3'))
          .option('--objective <metric>', 'what the search ranks candidates by (default: loss where the evaluator measures it, else --metric)')
          .addOption(shared.scoreCache())
          .option('--plot <file.svg>', 'write the convergence plot: best so far and median per generation')
          .option('--config-out <file.yml>', 'where the recipe found goes (default: mergekit_config.yml in a folder output, else OUT.mergekit.yml)')
          .addOption(shared.randomSeed())
          .addOption(shared.layerPattern()),
      ),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup evolve ties-search.yml --val fixtures/data/val -o evolved.onnx --plot convergence.svg',
        'soup evolve search.yml --eval-cmd "python eval.py {ckpt}" --jobs 4 --score-cache scores.jsonl --evaluations 40 -o evolved',
      ]),
    )
    .action(async (config: string, options: unknown) => {
      const { runEvolve } = await import('./commands/evolve.js');
      await runEvolve(config, options, signal);
    });
}

function declareInterpolate(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withEvaluationOptions(
      program
        .command('interpolate')
        .summary('score the models along the straight line from A to B: do two runs lie in one basin?')
        .description(
          "Scores (1-t) A + t B for t evenly spaced from 0 to 1 (the paper's question of whether two fine-tuned runs lie in one " +
            'basin of the loss, and so will soup well). Prints a table; --plot draws the curve as an SVG.',
        )
        .argument('<a>', 'a checkpoint (t = 0)')
        .argument('<b>', 'a checkpoint with the same tensors (t = 1)')
        .addOption(withDefault('--steps <n>', 'points from A to B, both included', '11'))
        .option('--plot <file.svg>', 'write the curve as an SVG line plot')
        .addOption(shared.allowFused())
        .addOption(shared.allowNonfinite()),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup interpolate fixtures/ingredients/lr1e-4-s1 fixtures/ingredients/lr3e-4-s2 --val fixtures/data/val',
        'soup interpolate a.safetensors b.safetensors --model model.json --val val.npz --steps 21 --plot basin.svg',
        'soup interpolate a.safetensors b.safetensors --eval-cmd "python eval.py {ckpt}" --json',
      ]),
    )
    .action(async (a: string, b: string, options: unknown) => {
      const { runInterpolate } = await import('./commands/interpolate.js');
      await runInterpolate(a, b, options, signal);
    });
}

function declareMerge(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withSoupOutputOptions(
      withMergeOptions(
        program
          .command('merge')
          .summary('merge with a mergekit method (ties, dare, slerp, ...) from a mergekit YAML recipe or flags')
          .description(
            "Merges checkpoints with one of mergekit's methods, with mergekit's semantics, tensor by tensor in float64. Give a " +
              'mergekit YAML recipe (merge_method, base_model, models, parameters, dtype, out_dtype, tokenizer_source), or the ' +
              'inputs and --method with its parameters. A folder output also gets mergekit_config.yml.',
          )
          .argument('<inputs...>', 'a mergekit YAML recipe, or checkpoints and folders of checkpoints'),
      ),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup merge ties.yml -o merged',
        'soup merge ./ckpts --method ties --base base.safetensors --density 0.5 -o merged.safetensors',
        'soup merge a.safetensors b.safetensors --method linear --weight a=0.7 --weight b=0.3 -o soup.safetensors',
        'soup merge ./ckpts --method dare_ties --base base --density 0.3 --random-seed 7 -o merged --json',
        'soup merge base.safetensors tuned.safetensors --method slerp --base base.safetensors --t 0.5 -o merged.safetensors',
      ]),
    )
    .action(async (inputs: string[], options: unknown) => {
      const { runMerge } = await import('./commands/merge.js');
      await runMerge(inputs, options, signal);
    });
}

function declareEval(program: Command, signal: AbortSignal): void {
  withEvaluationOptions(
    withCommonOptions(
      program
        .command('eval')
        .summary('score one checkpoint on validation data: accuracy, top5, loss, margin')
        .argument('<checkpoint>', 'a checkpoint')
        .addOption(shared.allowNonfinite()),
    ),
    undefined,
    false,
  )
    .addHelpText(
      'after',
      examples([
        'soup eval soup --val fixtures/data/test.npz',
        'soup eval soup.safetensors --model model.json --val val.npz --json',
        'soup eval soup.safetensors --eval-cmd "python eval.py {ckpt}"',
      ]),
    )
    .action(async (input: string, options: unknown) => {
      const { runEval } = await import('./commands/eval.js');
      await runEval(input, options, signal);
    });
}

function declareCompare(program: Command, signal: AbortSignal): void {
  withEvaluationOptions(
    withCommonOptions(
      program
        .command('compare')
        .summary('score ingredients, uniform soup, greedy soup and ensemble on validation and test sets; CI gates')
        .description(
          'Scores every ingredient, the uniform soup, the greedy soup (chosen on --val only) and the ensemble of all ' +
            'ingredients (mean of their outputs) on the validation set and every --test set. Soups are not written unless ' +
            '--save-dir asks. Gates exit 3 when they fail.',
        )
        .argument('<inputs...>', 'checkpoints, or folders of checkpoints')
        .option('--test <name=data>', 'a test set, repeatable (NAME=DATA; NAME defaults to the file name)', (value: string, previous: string[] = []) => [
          ...previous,
          value,
        ])
        .addOption(shared.acceptTies())
        .option('--save-dir <dir>', 'also write the uniform and greedy soups into this folder')
        .addOption(shared.force())
        .option('--markdown <file>', 'write a GitHub-flavoured Markdown report (for a PR comment or a job summary)')
        .option('--plot <file.svg>', "write the paper's Figure 1: validation score against mean test score")
        .option('--fail-under <value>', "gate: fail (exit 3) if the greedy soup's validation score is worse than this")
        .option('--baseline <file.json>', 'gate: an earlier compare --json; fail if a soup row drops more than --max-drop')
        .option('--max-drop <d>', 'largest drop allowed against --baseline (default: 0)')
        .option('--require-greedy-beats-best', 'gate: fail unless the greedy soup is at least as good as the best ingredient on validation')
        .addOption(shared.allowNonfinite())
        .option('--merge <config.yml>', 'also score the merge a mergekit YAML recipe makes (repeatable; a row of kind merge)', collect)
        .addOption(shared.allowFused()),
    ),
  )
    .addHelpText(
      'after',
      examples([
        'soup compare fixtures/ingredients --val fixtures/data/val --test test=fixtures/data/test.npz --test shifted=fixtures/data/test-shifted.npz',
        'soup compare ./ckpts --val val.npz --markdown report.md --plot soups.svg --require-greedy-beats-best',
        'soup compare ./ckpts --val val.npz --json > today.json',
        'soup compare ./ckpts --val val.npz --baseline yesterday.json --max-drop 0.005',
        'soup compare ./ckpts --val val.npz --merge ties.yml --merge dare.yml --plot soups.svg',
        'soup compare ./ckpts --eval-cmd "python eval.py {ckpt} {data}" --val val.jsonl --test ood=ood.jsonl',
      ]),
    )
    .action(async (inputs: string[], options: unknown) => {
      const { runCompare } = await import('./commands/compare.js');
      await runCompare(inputs, options, signal);
    });
}

function declareDiff(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    program
      .command('diff')
      .summary('per-tensor differences of two checkpoints; exit 3 above --tolerance')
      .description(
        'Per-tensor max absolute difference and cosine similarity of two checkpoints with the same tensors, and a one-line ' +
          'verdict. Exits 3 when they differ by more than --tolerance: a check that a soup is reproducible.',
      )
      .argument('<a>', 'a checkpoint')
      .argument('<b>', 'another checkpoint with the same tensors')
      .addOption(withDefault('--tolerance <t>', 'largest absolute difference accepted', '0')),
  )
    .addHelpText('after', examples(['soup diff soup.safetensors rebuilt.safetensors', 'soup diff soup-a soup-b --tolerance 1e-6 --json']))
    .action(async (a: string, b: string, options: unknown) => {
      const { runDiff } = await import('./commands/diff.js');
      await runDiff(a, b, options, signal);
    });
}

function declareInspect(program: Command): void {
  withCommonOptions(
    program
      .command('inspect')
      .summary('list tensors and metadata; check that checkpoints can be souped together')
      .description(
        "Shows each checkpoint's format, tensors (name, dtype, shape), parameter count, size and metadata.\n" +
          'Given several checkpoints, says whether they can be souped together and, if not, why (exit 2).',
      )
      .argument('<checkpoints...>', 'checkpoints, or folders of checkpoints'),
  )
    .addHelpText('after', examples(['soup inspect soup.safetensors', 'soup inspect ./ckpts --json']))
    .action(async (inputs: string[], options: unknown) => {
      const { runInspect } = await import('./commands/inspect.js');
      await runInspect(inputs, options);
    });
}

function declareCard(program: Command): void {
  withCommonOptions(
    program
      .command('card')
      .summary('print the model card (README.md) of a soup, from the recipe in its metadata')
      .description(
        'Prints the Hugging Face model card of a soup made by soup: the same README.md a folder output gets, rendered from ' +
          "the recipe stored in the weights' metadata (method, metric, every ingredient with its score, greedy's steps, " +
          'the command that made it).',
      )
      .argument('<soup>', 'a soup written by soup uniform, greedy, learned, merge or compare --save-dir'),
  )
    .addHelpText('after', examples(['soup card soup.safetensors > README.md', 'soup card soup.safetensors --json | jq -r .card']))
    .action(async (input: string, options: unknown) => {
      const { runCard } = await import('./commands/card.js');
      await runCard(input, options);
    });
}

function declareData(program: Command, signal: AbortSignal): void {
  withCommonOptions(
    withPreprocessingOptions(
      program
        .command('data')
        .summary('show what an evaluator would see: count, classes, shape, layout, value ranges, cache')
        .description(
          'Reads validation or test data with its preprocessing (flags over a dataset.json beside the data) and shows\n' +
            'the sample count, classes, sample shape and layout, the range of every channel, and the decoded-image cache.\n' +
            'An image folder is decoded once into the cache ($XDG_CACHE_HOME/model-soup/data); later runs read it.',
        )
        .argument('<data>', '.npz, a folder of IDX files, .csv, or a folder of class folders of images'),
    ),
    false,
  )
    .addHelpText(
      'after',
      examples([
        'soup data ./val-images --preprocess imagenet',
        'soup data ./val-images --preprocess clip --layout nchw --json',
        'soup data ./photos --resize 256 --crop 224 --scale 0.00392156862745098 --mean 0.5 --std 0.5',
        'soup data fixtures/data/test.npz',
      ]),
    )
    .action(async (target: string, options: unknown) => {
      const { runData } = await import('./commands/data.js');
      await runData(target, options, signal);
    });
}
