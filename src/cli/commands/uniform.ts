import { closeAll } from '../../checkpoint/discover.js';
import { countBytes, countParameters, openIngredients } from '../../soup/ingredients.js';
import { Mixer } from '../../soup/kernel/mix.js';
import { uniformCoefficients } from '../../soup/strategies/uniform.js';
import { describeModelFiles, prepareModelFiles, prepareOutput, writeSoup } from '../../soup/write.js';
import { formatBytes, formatCount, formatSeconds } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';

const schema = commonOptions.extend(soupOutputOptions.shape);

export async function runUniform(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  try {
    const output = await prepareOutput(checkpoints, { out: options.output, force: options.force, dtype: options.dtype, shardSize: options.outShardSize });
    for (const warning of await prepareModelFiles(checkpoints, output, options)) terminal.warn(warning);
    const names = checkpoints.map((checkpoint) => checkpoint.name);
    const mixer = new Mixer(checkpoints, { onProgress: terminal.progress(), signal, allowNonFinite: options.allowNonfinite, threads: true });
    const written = await writeSoup(
      checkpoints,
      output,
      mixer.producer(uniformCoefficients(checkpoints.length), { plan: output.tensors }),
      { strategy: 'uniform', chosen: names, extra: options.dtype === undefined ? {} : { dtype: options.dtype }, command: commandArguments() },
      signal,
    ).finally(() => mixer.close());
    terminal.endProgress();
    const seconds = (performance.now() - started) / 1000;
    const read = checkpoints.reduce((sum, checkpoint) => sum + countBytes(checkpoint), 0);
    const reference = checkpoints[0]!;
    if (terminal.json) {
      terminal.printJson({
        strategy: 'uniform',
        ingredients: checkpoints.map((checkpoint) => ({ name: checkpoint.name, path: checkpoint.path })),
        chosen: names,
        output: written.path,
        format: output.target.kind,
        tensors: reference.tensors().length,
        parameters: countParameters(reference),
        bytesRead: read,
        bytesWritten: written.bytes,
        seconds: Number(seconds.toFixed(3)),
        warnings: terminal.warnings,
      });
      return;
    }
    const paint = terminal.paint;
    terminal.print(`${paint.bold('Uniform soup')} of ${checkpoints.length} ingredients -> ${paint.cyan(written.path)}`);
    terminal.print(`  ingredients  ${names.join(', ')}`);
    terminal.print(`  tensors      ${reference.tensors().length} (${formatCount(countParameters(reference))} parameters)`);
    terminal.print(`  read         ${formatBytes(read)} in ${formatSeconds(seconds)}`);
    terminal.print(`  written      ${formatBytes(written.bytes)} (${output.target.kind})`);
    const modelFiles = describeModelFiles(output);
    if (modelFiles !== undefined) terminal.print(`  with         ${modelFiles}`);
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
