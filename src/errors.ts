/** Exit codes are a contract with CI scripts: see DESIGN.md. */
export const ExitCode = {
  ok: 0,
  internal: 1,
  badInput: 2,
  gateFailed: 3,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export interface SoupErrorOptions {
  /** What the user can do about it, printed after the message. */
  hint?: string;
  cause?: unknown;
}

/** Every error the tool expects to happen; anything else is a bug (exit 1). */
export class SoupError extends Error {
  readonly exitCode: ExitCode;
  readonly hint: string | undefined;

  constructor(message: string, exitCode: ExitCode, options: SoupErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = options.hint;
  }
}

/** The user asked for something that cannot work (bad flags, existing output). */
export class UsageError extends SoupError {
  constructor(message: string, options?: SoupErrorOptions) {
    super(message, ExitCode.badInput, options);
  }
}

/** A file or folder the user gave us is missing, unreadable or malformed. */
export class InputError extends SoupError {
  readonly file: string;
  readonly tensor: string | undefined;

  constructor(file: string, problem: string, options: SoupErrorOptions & { tensor?: string } = {}) {
    const where = options.tensor === undefined ? file : `${file}: tensor "${options.tensor}"`;
    super(`${where}: ${problem}`, ExitCode.badInput, options);
    this.file = file;
    this.tensor = options.tensor;
  }
}

/** Ingredients that cannot be souped together (names, shapes or dtypes disagree). */
export class IncompatibleError extends SoupError {
  readonly problems: string[];

  constructor(problems: string[], options?: SoupErrorOptions) {
    const [first = 'ingredients are incompatible'] = problems;
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more; 'soup inspect' lists them all)` : '';
    super(`${first}${more}`, ExitCode.badInput, options);
    this.problems = problems;
  }
}

/** A file could not be written (full disk, read-only folder, ...). */
export class OutputError extends SoupError {
  readonly problem: string;

  constructor(file: string, problem: string, options?: SoupErrorOptions) {
    super(`${file}: ${problem}`, ExitCode.badInput, options);
    this.problem = problem;
  }
}

/** A CI gate (a threshold or a regression check) failed: the build should fail, exit 3. */
export class GateError extends SoupError {
  /** A verdict the user asked for (soup diff: "they differ"), told as such rather than as an error. */
  readonly verdict: boolean;

  constructor(message: string, options: { verdict?: boolean } = {}) {
    super(message, ExitCode.gateFailed);
    this.verdict = options.verdict ?? false;
  }
}

export class InterruptedError extends SoupError {
  constructor(signal = 'SIGINT') {
    super(`interrupted by ${signal}; nothing was written`, ExitCode.interrupted);
  }
}

/** Throws InterruptedError when the user pressed Ctrl-C; called between units of work. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    const reason: unknown = signal.reason;
    throw reason instanceof SoupError ? reason : new InterruptedError();
  }
}

/** Node's fs errors carry a code; turn the common ones into words a user understands. */
export function describeFsError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file or directory';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory, expected a file';
    case 'ENOTDIR':
      return 'not a directory';
    case 'ENOSPC':
      return 'no space left on device';
    case 'EROFS':
      return 'read-only file system';
    case 'EDQUOT':
      return 'disk quota exceeded';
    default:
      return error instanceof Error ? error.message : String(error);
  }
}
