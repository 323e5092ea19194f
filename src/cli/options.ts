import { z } from 'zod';
import { parseFloatDType, type FloatDType } from '../checkpoint/dtype.js';
import { parseShardSize } from '../checkpoint/shard-layout.js';
import type { OpenOptions } from '../soup/ingredients.js';
import { CHECKPOINT_CHOICES } from '../checkpoint/trainer-layout.js';
import { UsageError } from '../errors.js';
import { OUTPUT_PLACEHOLDER } from '../recipe/card.js';
import type { Terminal } from '../report/terminal.js';

/** Options every command takes. */
export const commonOptions = z.object({
  json: z.boolean().default(false),
  quiet: z.boolean().default(false),
  color: z.boolean().default(true),
  debug: z.boolean().default(false),
  key: z.string().min(1).optional(),
  checkpoints: z.enum(CHECKPOINT_CHOICES).optional(),
});

/**
 * How commands find checkpoints: --key for PyTorch wrappers, --checkpoints for Trainer runs, the --model
 * export left out of the ingredients, and discovery's warnings on the terminal.
 */
export function discoverOptions(
  options: { key?: string | undefined; allowFused?: boolean | undefined; checkpoints?: OpenOptions['checkpoints']; model?: string | undefined },
  terminal: Terminal,
): OpenOptions {
  return {
    key: options.key,
    allowFused: options.allowFused,
    checkpoints: options.checkpoints,
    exclude: options.model === undefined ? [] : [options.model],
    onWarning: (message) => terminal.warn(message),
  };
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
  copyFrom: z.string().min(1).optional(),
  /** commander's --no-card sets card: false. */
  card: z.boolean().default(true),
  allowFused: z.boolean().default(false),
  outShardSize: z
    .string()
    .transform((text, context): number => {
      const bytes = parseShardSize(text);
      if (bytes === undefined) {
        context.addIssue({ code: 'custom', message: `"${text}" is not a size (use 5GB, 500M, 2GiB or bytes)` });
        return z.NEVER;
      }
      return bytes;
    })
    .optional(),
});
export type SoupOutputOptions = z.output<typeof soupOutputOptions>;

/** Flags that change what is printed, never the soup: left out of the recorded command. */
const PRESENTATION_FLAGS = new Set(['--json', '-q', '--quiet', '--no-color', '--debug', '-f', '--force']);

/**
 * The arguments after `soup`, recorded in the recipe so the model card can show how to make the soup
 * again. The output path is recorded as {output}, and flags that only change what is printed are left
 * out, so the same soup written anywhere, with or without --json, has the same bytes.
 */
export function commandArguments(argv: readonly string[] = process.argv.slice(2)): string[] {
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (PRESENTATION_FLAGS.has(arg)) continue;
    if (arg === '-o' || arg === '--output') {
      kept.push(arg, OUTPUT_PLACEHOLDER);
      i++;
    } else if (arg.startsWith('--output=')) kept.push(`--output=${OUTPUT_PLACEHOLDER}`);
    else if (arg.startsWith('-o') && arg.length > 2) kept.push(`-o${OUTPUT_PLACEHOLDER}`);
    else kept.push(arg);
  }
  return kept;
}

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
