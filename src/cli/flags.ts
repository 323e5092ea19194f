/** The commander declarations of flags that more than one command takes. */
import { type Command, Option } from 'commander';

/** An option whose default is shown as every other default is, `(default: 512)`, not commander's `(default: "512")`. */
export function withDefault(flags: string, help: string, value: string): Option {
  return new Option(flags, help).default(value, value);
}

/**
 * Flags several commands share, declared once so that --help says the same thing everywhere (a test
 * compares every flag's text across commands).
 */
export const shared = {
  allowFused: () => new Option('--allow-fused', 'accept ONNX models whose Conv weights have BatchNorm folded in'),
  acceptTies: () => new Option('--accept-ties', 'greedy soup: also keep an ingredient that leaves the score unchanged'),
  force: () => new Option('-f, --force', 'replace existing outputs'),
  scoreCache: () =>
    new Option(
      '--score-cache <file>',
      'a journal of every score (JSON lines, appended as each arrives): a re-run (after Ctrl-C or a crash) scores nothing it has scored before',
    ),
  layerPattern: () =>
    new Option('--layer-pattern <regex>', "where the layer index is in a tensor name (first group): for parameter gradients, and learned's --by block"),
  randomSeed: () => new Option('--random-seed <n>', "seed of dare's masks (default: 0); same seed, same bytes on any machine"),
  allowNonfinite: () =>
    new Option(
      '--allow-nonfinite',
      'use NaN and infinite weights as they are (by default uniform and merge refuse them, greedy, learned and compare leave diverged runs out, eval and interpolate score them and mark them diverged)',
    ),
};

/** `ingredients`: the command reads checkpoints, so it takes the flags that say how to find them. */
export function withCommonOptions(command: Command, ingredients = true): Command {
  command
    .option('--json', 'print one JSON document on stdout and nothing else there')
    .option('-q, --quiet', 'no progress or warnings on stderr')
    .option('--no-color', 'no colour (NO_COLOR=1 does the same)');
  if (ingredients) {
    command
      .option(
        '--key <name>',
        'PyTorch checkpoints: the top-level entry holding the weights (default: the top level, or state_dict, model, model_state_dict, module)',
      )
      .addOption(
        new Option(
          '--checkpoints <which>',
          'Trainer runs (folders of checkpoint-N folders): final weights, last or best (trainer_state.json) checkpoint, or all checkpoints (default: final weights where saved, else all)',
        ).choices(['final', 'last', 'best', 'all']),
      );
  }
  return command.addOption(new Option('--debug', 'show stack traces of errors'));
}

/** Options of the commands that write a soup. */
export function withSoupOutputOptions(command: Command): Command {
  return command
    .option(
      '-o, --output <path>',
      "where to write the soup: one file by its suffix (.safetensors; .pt, .pth, .bin, .ckpt; .onnx from ONNX models), else a folder in the inputs' format",
    )
    .option('--dtype <dtype>', 'float dtype to write: f32, f16, bf16 or f64 (default: as the inputs)')
    .addOption(shared.force())
    .addOption(shared.allowNonfinite())
    .option('--copy-from <name>', 'the ingredient whose config and tokenizer files a folder output gets (default: the first)')
    .option('--no-card', 'no README.md model card in a folder output')
    .addOption(shared.allowFused())
    .option('--out-shard-size <size>', "split a model folder's weights into shards of at most this size (5GB, 500M; mergekit's 5B)");
}

/** `jobs`: the command scores several candidates, so it can run several at once. */
export function withEvaluationOptions(command: Command, batchSize = { help: 'samples per prediction batch', default: '512' }, jobs = true): Command {
  withPreprocessingOptions(command)
    .option('--val <data>', 'validation data: .npz (x, y), a folder of IDX files, .csv with a label column, or a folder of class folders of images')
    .option(
      '--eval-cmd <command>',
      "score with a command instead: {ckpt} is replaced by a candidate checkpoint's path; its last stdout line is JSON metrics or a number",
    )
    .option('--eval-timeout <seconds>', 'kill --eval-cmd after this long')
    .addOption(
      withDefault('--metric <name>', 'the score to rank by: accuracy, top5, margin, loss, or a name --eval-cmd prints (eval_loss, eval_f1, ...)', 'accuracy'),
    )
    .option('--model <model>', 'model architecture for ingredients that have none: a TF.js model.json or an .onnx export (weight names must match)')
    .option('--output-name <name>', 'ONNX models: the output holding the logits (default: the first)')
    .addOption(new Option('--backend <name>', 'TF.js backend (default: fastest available)').choices(['node', 'wasm', 'cpu']))
    .addOption(withDefault('--batch-size <n>', batchSize.help, batchSize.default));
  if (jobs)
    command.option(
      '--jobs <n>',
      'worker threads for scoring ingredients, or --eval-cmd commands run at once (default: all cores when TF.js scoring is slow enough to pay for them; 1 command)',
    );
  return command
    .option(
      '--work-dir <dir>',
      "where --eval-cmd's candidate checkpoints are written, e.g. storage shared with cluster nodes (default: the system temporary folder)",
    )
    .option('--maximize', 'higher --metric is better (needed for a name soup does not know; known: accuracy, f1, bleu, rouge*, exact_match, auc, ...)')
    .option('--minimize', 'lower --metric is better (needed for a name soup does not know; known: loss, eval_loss, perplexity, wer, cer, mse, ...)')
    .addOption(
      new Option('--executor <name>', 'where --eval-cmd runs: here (local), or as one Slurm batch job per evaluation (slurm)').choices(['local', 'slurm']),
    )
    .option('--slurm-args <args>', 'arguments for sbatch, e.g. "--gres=gpu:1 --time=2:00:00 --partition=gpu"')
    .option('--retries <k>', "Slurm: re-submit a job that ended for the cluster's reasons (--retry-on) up to k times (default: 2)")
    .option(
      '--retry-on <states>',
      'Slurm: the job states that are re-submitted (default: NODE_FAIL,PREEMPTED,BOOT_FAIL; may add TIMEOUT, CANCELLED, OUT_OF_MEMORY, DEADLINE)',
    );
}

/** Preprocessing of evaluation data; each flag overrides one key of the preset and of dataset.json. */
export function withPreprocessingOptions(command: Command): Command {
  return command
    .addOption(
      new Option('--preprocess <preset>', 'preset steps: imagenet (resize 256, crop 224, ImageNet mean/std) or clip (bicubic 224, CLIP mean/std)').choices([
        'imagenet',
        'clip',
      ]),
    )
    .option('--resize <n>', 'images: resize the shorter side to n pixels')
    .addOption(new Option('--interpolation <kind>', 'images: resize interpolation (default: bilinear)').choices(['bilinear', 'bicubic']))
    .option('--crop <n>', 'images: center crop to n x n pixels')
    .option('--scale <x>', 'preprocessing: x * scale + offset (default: from dataset.json beside the data, else 1)')
    .option('--offset <x>', 'preprocessing offset (default: from dataset.json, else 0)')
    .option('--mean <values>', 'per-channel mean subtracted after scaling, e.g. 0.485,0.456,0.406')
    .option('--std <values>', 'per-channel std divided by after the mean, e.g. 0.229,0.224,0.225')
    .addOption(
      new Option('--channels <order>', 'images: channels to give the model (default: RGB, or grey when every image is grey)').choices(['rgb', 'bgr', 'grey']),
    )
    .addOption(new Option('--layout <layout>', "input layout when the model's shape leaves it open (default: from the model)").choices(['nchw', 'nhwc']));
}

export const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

/** Flags describing a merge method and its parameters (soup merge, soup greedy --method). */
export function withMergeOptions(command: Command): Command {
  return command
    .option('--method <name>', 'merge method: linear, task_arithmetic, ties, dare_linear, dare_ties, slerp, model_stock, breadcrumbs')
    .option('--base <checkpoint>', 'base model the task vectors are taken from (never counted as an ingredient)')
    .option('--weight <w|name=w>', 'weight of every ingredient, or of one (repeatable; default: 1)', collect)
    .option('--density <d|name=d>', 'fraction of each task vector kept (ties, dare, breadcrumbs; repeatable)', collect)
    .option('--gamma <g|name=g>', 'breadcrumbs: fraction of the largest entries dropped (repeatable)', collect)
    .option('--lambda <x>', 'scale of the merged task vector (default: 1)')
    .option('--t <x>', 'slerp: 0 is the base, 1 the other model')
    .option('--normalize', 'divide by the sum of the weights')
    .option('--no-normalize', 'do not divide by the sum of the weights')
    .option('--rescale', 'dare: rescale kept entries')
    .option('--no-rescale', 'dare: do not rescale kept entries')
    .addOption(
      new Option('--rescale-mode <mode>', "dare: l1 (match the delta's L1 norm, as mergekit) or inverse_density (the DARE paper)").choices([
        'l1',
        'inverse_density',
      ]),
    )
    .addOption(new Option('--ties-scope <scope>', 'ties: top-k per tensor (mergekit) or over the whole model (TIES paper)').choices(['tensor', 'global']))
    .option('--filter-wise', 'model_stock: one ratio per row')
    .addOption(shared.randomSeed())
    .addOption(shared.layerPattern());
}

export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}
