import { z } from 'zod';
import { closeAll } from '../../checkpoint/discover.js';
import { renderInterpolation } from '../../report/interpolate.js';
import { Terminal } from '../../report/terminal.js';
import { interpolate, openInterpolationEnds } from '../../soup/strategies/interpolate.js';
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
  const [a, b] = await openInterpolationEnds(first, second, discoverOptions(options, terminal), options.allowFused);
  try {
    const made = await interpolate(a, b, options, {
      steps: options.steps,
      allowNonFinite: options.allowNonfinite,
      onProgress: terminal.progress(),
      warn: (message) => terminal.warn(message),
      signal,
    }).finally(() => terminal.endProgress());
    const seconds = (performance.now() - started) / 1000;
    await renderInterpolation(terminal, made, { val: options.val, plot: options.plot, seconds });
  } finally {
    await closeAll([a, b]);
  }
}
