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

const SGR = /^\u001b\[[0-9;]*m/;

/**
 * A line of results for the terminal: control characters from names escaped, but the colour codes
 * soup's own painting adds (SGR sequences only: they cannot move the cursor or clear the screen) kept.
 */
export function escapeKeepingColour(text: string): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x1b) continue;
    const colour = SGR.exec(text.slice(i, i + 16));
    if (colour === null) continue;
    out += escapeControl(text.slice(from, i)) + colour[0];
    i += colour[0].length - 1;
    from = i + 1;
  }
  return out + escapeControl(text.slice(from));
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
