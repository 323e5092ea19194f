import { UsageError } from './errors.js';

/** Quotes a path for sh, so spaces, quotes and $(...) in it are data, never code. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Where a placeholder stands in a sh command, which decides how its value must be quoted. */
type Context = 'plain' | 'single' | 'double' | 'backquote' | 'parameter';

interface Frame {
  context: Context;
  /** Open `(` in a plain frame; the `)` that finds none closes a `$(` frame. */
  depth: number;
  /** Whether a `)` may close this frame (it was opened by `$(`). */
  substitution: boolean;
}

/**
 * Fills `{name}` placeholders of a sh command template in one pass, so a value that holds the text
 * `{data}` is never filled again, and quotes each value for the spot it stands in: bare, inside the
 * user's '...' (closed, quoted, reopened) or "..." (backslash before $ ` " \). Inside `...` or ${...}
 * no quoting is safe, so a placeholder there is refused. Names without a value are left as they are.
 */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>, what = '--eval-cmd'): string {
  const stack: Frame[] = [{ context: 'plain', depth: 0, substitution: false }];
  let out = '';
  let i = 0;
  while (i < template.length) {
    const frame = stack.at(-1)!;
    const char = template[i]!;
    const next = template[i + 1];
    if (char === '{') {
      const match = /^\{([A-Za-z_][A-Za-z0-9_]*)\}/.exec(template.slice(i));
      const name = match?.[1];
      if (name !== undefined && Object.hasOwn(values, name)) {
        out += quoteFor(frame.context, values[name]!, `{${name}}`, what);
        i += match![0].length;
        continue;
      }
    }
    i++;
    out += char;
    switch (frame.context) {
      case 'single':
        if (char === "'") stack.pop();
        break;
      case 'backquote':
        if (char === '\\' && next !== undefined) {
          out += next;
          i++;
        } else if (char === '`') stack.pop();
        break;
      case 'parameter':
        if (char === '}') stack.pop();
        else if (char === '$' && next === '{') {
          out += next;
          i++;
          stack.push({ context: 'parameter', depth: 0, substitution: false });
        }
        break;
      case 'double':
      case 'plain': {
        if (char === '\\' && next !== undefined) {
          out += next;
          i++;
        } else if (char === '`') stack.push({ context: 'backquote', depth: 0, substitution: false });
        else if (char === '$' && (next === '(' || next === '{')) {
          out += next;
          i++;
          stack.push(next === '(' ? { context: 'plain', depth: 0, substitution: true } : { context: 'parameter', depth: 0, substitution: false });
        } else if (frame.context === 'double' && char === '"') stack.pop();
        else if (frame.context === 'plain' && char === '"') stack.push({ context: 'double', depth: 0, substitution: false });
        else if (frame.context === 'plain' && char === "'") stack.push({ context: 'single', depth: 0, substitution: false });
        else if (frame.context === 'plain' && char === '#' && (i === 1 || /\s|;|&|\|/.test(template[i - 2]!))) {
          // A comment runs to the end of the line: its quotes open nothing.
          const end = template.indexOf('\n', i);
          const stop = end === -1 ? template.length : end;
          out += template.slice(i, stop);
          i = stop;
        } else if (frame.context === 'plain' && char === '(') frame.depth++;
        else if (frame.context === 'plain' && char === ')') {
          if (frame.depth > 0) frame.depth--;
          else if (frame.substitution) stack.pop();
        }
        break;
      }
    }
  }
  return out;
}

function quoteFor(context: Context, value: string, placeholder: string, what: string): string {
  switch (context) {
    case 'plain':
      return shellQuote(value);
    case 'single':
      // Close the user's quote, add the value quoted on its own, reopen: 'a{ckpt}b' -> 'a''/the path''b'.
      return `'${shellQuote(value)}'`;
    case 'double':
      return value.replace(/[\\$`"]/g, '\\$&');
    case 'backquote':
    case 'parameter':
      throw new UsageError(`${what}: ${placeholder} stands inside ${context === 'backquote' ? '`...`' : '${...}'}, where a path cannot be quoted safely`, {
        hint: `put ${placeholder} outside it, or use $(...) instead of backquotes`,
      });
  }
}
