import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_MESSAGE_CHARS, escapeControl, escapeKeepingColour, oneLine, quoteName } from '../src/one-line.js';

describe('one-line messages', () => {
  it('escapes newlines, carriage returns, tabs, escape sequences and line separators from file names', () => {
    assert.equal(escapeControl('a\nb\rc\td\u001b[2Je\u0000f\u007f\u2028'), 'a\\nb\\rc\\td\\x1b[2Je\\x00f\\x7f\\u2028');
  });

  it('keeps the colour codes soup paints with, and escapes every other escape sequence', () => {
    assert.equal(escapeKeepingColour('\u001b[1mname\u001b[22m x\u001b[2J\n'), '\u001b[1mname\u001b[22m x\\x1b[2J\\n');
  });

  it('cuts the middle of a 20 MB message, keeping its start and end and saying how much was cut', () => {
    const message = `file.json: dtype "${'x'.repeat(20_000_000)}" is not supported`;
    const line = oneLine(message);
    assert.ok(line.length < MAX_MESSAGE_CHARS + 60, String(line.length));
    assert.ok(line.startsWith('file.json: dtype "xxx'));
    assert.ok(line.endsWith('xxx" is not supported'));
    assert.match(line, /\.\.\. \(19998036 characters cut\) \.\.\./);
  });

  it('quotes a name from a file, escaped and at most 200 characters', () => {
    assert.equal(quoteName('a\nb'), '"a\\nb"');
    assert.ok(quoteName('y'.repeat(10_000)).length < 260);
  });
});
