import { Command, CommanderError, Option } from 'commander';
import { ExitCode, InterruptedError, SoupError } from '../errors.js';
import { TOOL_VERSION } from '../version.js';

/**
 * The entry point: builds the command line, runs one command, and is the only place that decides
 * the exit code. Command modules are imported only when their command runs, so `--help` stays fast.
 */

const interrupt = new AbortController();

function withCommonOptions(command: Command): Command {
  return command
    .option('--json', 'print one JSON document on stdout and nothing else there')
    .option('-q, --quiet', 'no progress or warnings on stderr')
    .option('--no-color', 'no colour (NO_COLOR=1 does the same)')
    .addOption(new Option('--debug', 'show stack traces of errors'));
}

function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  $ ${line}`).join('\n')}\n`;
}

function buildProgram(): Command {
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
        'soup inspect ./ckpts',
      ]) +
        '\nInputs are .safetensors files, sharded safetensors folders (model.safetensors.index.json),\n' +
        'TF.js LayersModel folders (model.json), or folders holding any of these.\n' +
        '\nExit codes: 0 success, 1 internal error, 2 bad usage or input, 3 CI gate failed, 130 interrupted.\n',
    );

  withCommonOptions(
    program
      .command('uniform')
      .summary('average every ingredient with equal weight')
      .description('The uniform soup: the element-wise mean of every ingredient, streamed tensor by tensor.')
      .argument('<inputs...>', 'checkpoints, or folders of checkpoints')
      .option('-o, --output <path>', 'where to write the soup (.safetensors for one file; otherwise a folder in the inputs\' format)')
      .option('--dtype <dtype>', 'float dtype to write: f32, f16, bf16 or f64 (default: as the inputs)')
      .option('-f, --force', 'replace an existing output')
      .option('--allow-nonfinite', 'average NaN and infinite weights instead of refusing them'),
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
      await runUniform(inputs, options, interrupt.signal);
    });

  withCommonOptions(
    program
      .command('inspect')
      .summary('list tensors and metadata; check that checkpoints can be souped together')
      .description(
        'Shows each checkpoint\'s format, tensors (name, dtype, shape), parameter count, size and metadata.\n' +
          'Given several checkpoints, says whether they can be souped together and, if not, why (exit 2).',
      )
      .argument('<checkpoints...>', 'checkpoints, or folders of checkpoints'),
  )
    .addHelpText('after', examples(['soup inspect soup.safetensors', 'soup inspect ./ckpts --json']))
    .action(async (inputs: string[], options: unknown) => {
      const { runInspect } = await import('./commands/inspect.js');
      await runInspect(inputs, options);
    });

  return program;
}

function report(error: unknown, debug: boolean): ExitCode {
  if (error instanceof CommanderError) {
    // Help and --version "fail" with exit code 0; every other parse error is bad usage.
    return error.exitCode === 0 ? ExitCode.ok : ExitCode.badInput;
  }
  if (error instanceof SoupError) {
    const hint = error.hint === undefined ? '' : ` (${error.hint})`;
    process.stderr.write(`soup: error: ${error.message}${hint}\n`);
    if (debug && error.stack !== undefined) process.stderr.write(`${error.stack}\n`);
    return error.exitCode;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`soup: internal error: ${message}\n`);
  process.stderr.write(
    debug && error instanceof Error && error.stack !== undefined
      ? `${error.stack}\n`
      : 'This is a bug in soup. Please report it with the command you ran and the output of the same command with --debug.\n',
  );
  return ExitCode.internal;
}

async function main(argv: string[]): Promise<ExitCode> {
  const debug = argv.includes('--debug');
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    // A second Ctrl-C means "now": the first one is still cleaning up.
    if (signals > 1) process.exit(ExitCode.interrupted);
    interrupt.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    await buildProgram().parseAsync(argv);
    return interrupt.signal.aborted ? ExitCode.interrupted : ExitCode.ok;
  } catch (error) {
    return report(error, debug);
  }
}

process.exit(await main(process.argv));
