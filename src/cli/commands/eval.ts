import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { renderEval } from '../../report/eval.js';
import { Terminal } from '../../report/terminal.js';
import { openSingle } from '../../soup/single.js';
import { scoreCheckpoint } from '../../soup/strategies/eval.js';
import { evaluationOptions } from '../evaluation.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

const schema = commonOptions.extend(evaluationOptions.shape).extend({
  allowNonfinite: z.boolean().default(false),
});

export async function runEval(input: string, rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const checkpoint = await openSingle(input, discoverOptions(options, terminal), 'soup eval scores one (use soup compare for several)');
  try {
    const made = await scoreCheckpoint(checkpoint, options, {
      allowNonFinite: options.allowNonfinite,
      onProgress: terminal.progress(),
      warn: (message) => terminal.warn(message),
      signal,
    });
    renderEval(terminal, made, { name: checkpoint.name, val: options.val });
  } finally {
    await closeAll([checkpoint]);
  }
}
