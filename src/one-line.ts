/**
 * Text from files (tensor names, keys, values) reaches messages; a newline or an escape sequence in
 * it must not forge extra lines or repaint the terminal, and a 20 MB value must not flood it. Every
 * message leaves soup as one line of printable text.
 */

/** Longest message printed whole; longer ones keep their start and end. */
export const MAX_MESSAGE_CHARS = 2000;

const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Control characters as visible escapes: "\n", "\t", "\x1b", "\u2028". */
export function escapeControl(text: string): string {
  return text.replace(CONTROL, (char) => {
    switch (char) {
      case '\n':
        return '\\n';
      case '\r':
        return '\\r';
      case '\t':
        return '\\t';
      default: {
        const code = char.charCodeAt(0);
        return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
      }
    }
  });
}

/** At most `max` characters: the start and the end, and how much was cut between them. */
export function truncateMiddle(text: string, max = MAX_MESSAGE_CHARS): string {
  if (text.length <= max) return text;
  const tail = Math.floor(max / 4);
  const head = max - tail;
  return `${text.slice(0, head)}... (${text.length - head - tail} characters cut) ...${text.slice(text.length - tail)}`;
}

/** A message as soup prints it: one line, control characters escaped, at most MAX_MESSAGE_CHARS. */
export function oneLine(text: string, max = MAX_MESSAGE_CHARS): string {
  return escapeControl(truncateMiddle(text, max));
}

/** A name or value from a file, quoted for a message: `"a\nb"`, at most `max` characters. */
export function quoteName(text: string, max = 200): string {
  return `"${oneLine(text, max)}"`;
}
