import { z } from 'zod';
import { parseFloatDType, type FloatDType } from '../checkpoint/dtype.js';
import type { DiscoverOptions } from '../checkpoint/discover.js';
import { UsageError } from '../errors.js';
import type { Terminal } from '../report/terminal.js';

/** Options every command takes. */
export const commonOptions = z.object({
  json: z.boolean().default(false),
  quiet: z.boolean().default(false),
  color: z.boolean().default(true),
  debug: z.boolean().default(false),
  key: z.string().min(1).optional(),
});

/** How commands find checkpoints: --key for PyTorch wrappers, and discovery's warnings on the terminal. */
export function discoverOptions(options: { key?: string | undefined }, terminal: Terminal): DiscoverOptions {
  return { key: options.key, onWarning: (message) => terminal.warn(message) };
}

export const dtypeOption = z
  .string()
  .transform((text, context): FloatDType => {
    const dtype = parseFloatDType(text);
    if (dtype === undefined) {
      context.addIssue({ code: 'custom', message: `unknown dtype "${text}" (use f32, f16, bf16 or f64)` });
      return z.NEVER;
    }
    return dtype;
  })
  .optional();

/** Options of every command that writes a soup (uniform, greedy). */
export const soupOutputOptions = z.object({
  output: z.string({ required_error: 'is required: where to write the soup' }).min(1),
  dtype: dtypeOption,
  force: z.boolean().default(false),
  allowNonfinite: z.boolean().default(false),
});

/** Validates commander's options object; every problem becomes one `--flag: message` line. */
export function parseOptions<S extends z.ZodType>(schema: S, options: unknown): z.output<S> {
  const parsed = schema.safeParse(options);
  if (parsed.success) return parsed.data;
  const lines = parsed.error.issues.map((issue) => {
    const flag = issue.path.length > 0 ? `--${String(issue.path[0]).replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ` : '';
    return `${flag}${issue.message}`;
  });
  throw new UsageError(lines.join('; '));
}
