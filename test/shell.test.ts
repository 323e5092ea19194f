import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../src/errors.js';
import { fillTemplate } from '../src/shell.js';
import { tempDir } from './helpers/files.js';

const dir = await tempDir();
const pwned = path.join(dir, 'pwned');

/** Values that break out of every naive quoting: each would create `pwned` if run as code. */
const hostile = [
  `${dir}/it's here`,
  `${dir}/a"; touch ${pwned}; echo "`,
  `${dir}/a'; touch ${pwned}; echo '`,
  `${dir}/$(touch ${pwned})`,
  `${dir}/\`touch ${pwned}\``,
  `${dir}/back\\slash\\" and $HOME`,
  `${dir}/two\nlines`,
];

/** What sh hands the command for each argument, one per line, as JSON strings. */
function argumentsOf(command: string): string[] {
  const script = `${command.replace('CMD', `${JSON.stringify(process.execPath)} -e 'console.log(JSON.stringify(process.argv.slice(1)))'`)}`;
  const result = spawnSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as string[];
}

describe('fillTemplate', () => {
  for (const [where, template, expected] of [
    ['bare', 'CMD {ckpt}', (v: string) => [v]],
    ["inside the user's double quotes", 'CMD "{ckpt}" "dir={ckpt}/x"', (v: string) => [v, `dir=${v}/x`]],
    ["inside the user's single quotes", "CMD '{ckpt}' 'dir={ckpt}/x'", (v: string) => [v, `dir=${v}/x`]],
    ['inside $(...) inside double quotes', 'CMD "$(printf %s "{ckpt}")" $(printf %s {ckpt} | wc -c)', (v: string) => [v, String(Buffer.byteLength(v))]],
    ['after a comment with an apostrophe', "CMD {ckpt} # it's the candidate\n", (v: string) => [v]],
  ] as const) {
    it(`hands the command the exact path, never running it, when the placeholder stands ${where}`, () => {
      for (const value of hostile) assert.deepEqual(argumentsOf(fillTemplate(template, { ckpt: value })), expected(value), value);
      assert.equal(existsSync(pwned), false);
    });
  }

  it('fills every placeholder in one pass, so a path holding "{data}" is not filled again', () => {
    const filled = fillTemplate('CMD {ckpt} "{data}"', { ckpt: `${dir}/{data}/c`, data: `$(touch ${pwned})` });
    assert.deepEqual(argumentsOf(filled), [`${dir}/{data}/c`, `$(touch ${pwned})`]);
    assert.equal(existsSync(pwned), false);
  });

  it('leaves braces that are not placeholders, and ${...} of the shell, as they are', () => {
    assert.equal(fillTemplate('echo {a,b} ${ckpt} {unknown}', { ckpt: '/x' }), 'echo {a,b} ${ckpt} {unknown}');
  });

  it('refuses a placeholder inside backquotes or ${...}, where no quoting is safe', () => {
    for (const [template, where] of [
      ['echo `cat {ckpt}`', '`...`'],
      ['echo "${X:-{ckpt}}"', '${...}'],
    ] as const) {
      assert.throws(
        () => fillTemplate(template, { ckpt: '/x' }),
        (error: unknown) => {
          assert.ok(error instanceof UsageError);
          assert.equal(error.message, `--eval-cmd: {ckpt} stands inside ${where}, where a path cannot be quoted safely`);
          assert.equal(error.hint, 'put {ckpt} outside it, or use $(...) instead of backquotes');
          return true;
        },
      );
    }
  });
});
