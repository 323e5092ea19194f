import { closeAll } from '../../checkpoint/discover.js';
import { renderUniform } from '../../report/uniform.js';
import { Terminal } from '../../report/terminal.js';
import { openIngredients } from '../../soup/ingredients.js';
import { uniformSoup } from '../../soup/strategies/uniform.js';
import { describeModelFiles, writeOutcome } from '../../soup/write.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';
import { prepareSoupOutput } from '../output.js';

const schema = commonOptions.extend(soupOutputOptions.shape);

export async function runUniform(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const checkpoints = await openIngredients(inputs, discoverOptions(options, terminal));
  try {
    const output = await prepareSoupOutput(checkpoints, options, terminal);
    const made = uniformSoup(checkpoints, output, {
      allowNonFinite: options.allowNonfinite,
      dtype: options.dtype,
      command: commandArguments(),
      onProgress: terminal.progress(),
      signal,
    });
    const written = await writeOutcome(checkpoints, output, made, signal);
    terminal.endProgress();
    const seconds = (performance.now() - started) / 1000;
    renderUniform(terminal, made.document, { ...written, seconds, modelFiles: describeModelFiles(output) });
  } finally {
    terminal.endProgress();
    await closeAll(checkpoints);
  }
}
