import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import { before, describe, it } from 'node:test';
import { SOUP_BIN, TEST_CACHE_HOME } from '../helpers/cli.js';
import { REPO, buildWorld } from '../helpers/example-world.js';
import { tempDir } from '../helpers/files.js';

/** The examples soup shows a user, read from the built CLI and the documents, never copied here. */
const help = (args: string[]): string =>
  execFileSync(process.execPath, [SOUP_BIN, ...args, '--help'], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
const COMMANDS = [...help([]).matchAll(/^ {2}([a-z]+) \[options\]/gm)].map((match) => match[1]!);
const helpExamples = (text: string): string[] => [...text.matchAll(/^\s*\$ (soup .+)$/gm)].map((match) => match[1]!.trim());

/**
 * The soup command lines of a Markdown document: `$ soup ...` lines and `soup ...`, `npx soup ...` or
 * `./bin/soup.js ...` lines in fenced or indented code (a line ending in `\` continues on the next).
 * `npx soup` is run as `soup` (npx finds the installed bin; the sandbox has soup on PATH), and of
 * `npm ci && ./bin/soup.js ...` only the soup part runs.
 */
function documentExamples(text: string): string[] {
  const examples: string[] = [];
  const lines = text.split('\n');
  let fenced = false;
  const start = new RegExp(`(?:^|&& )(?:\\$ |npx )?((?:soup|\\./bin/soup\\.js) (?:${COMMANDS.join('|')})\\b.*)$`);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      continue;
    }
    if (!fenced && !/^ {4}/.test(line)) continue;
    const match = start.exec(line.trim());
    if (match === null) continue;
    let example = match[1]!;
    while (example.endsWith('\\') && i + 1 < lines.length) example = `${example.slice(0, -1).trimEnd()} ${lines[++i]!.trim()}`;
    examples.push(example);
  }
  return examples;
}

/** Words of a command line as the shell splits them, up to a comment; operators (|, >, &&) stand alone. */
function words(line: string): string[] {
  const out: string[] = [];
  for (const [, single, double, plain] of line.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(#.*$|[^\s'"]+)/g)) {
    if (plain?.startsWith('#') && out.length > 0) break;
    out.push(single ?? double ?? plain!);
  }
  return out;
}

/** What an example writes: `-o`'s output, the reports it asks for, redirected stdout; and journals it starts. */
function outputsOf(line: string): { made: string[]; written: string[] } {
  const made: string[] = [];
  const written: string[] = [];
  const list = words(line);
  for (let i = 0; i + 1 < list.length; i++) {
    if (['-o', '--output', '--plot', '--markdown', '>', '>>'].includes(list[i]!)) made.push(list[i + 1]!);
    if (['--score-cache', '--save-dir'].includes(list[i]!)) written.push(list[i + 1]!);
  }
  return { made, written: [...made, ...written] };
}

const world = await tempDir('soup-examples-');
const sandboxes = await tempDir('soup-example-runs-');
before(() => buildWorld(world), { timeout: 120_000 });

/** A fresh folder of links to everything in the world except what this example writes. */
async function sandboxFor(line: string): Promise<string> {
  const dir = await mkdtemp(path.join(sandboxes, 'run-'));
  await mkdir(path.join(dir, 'scratch'));
  const written = new Set(outputsOf(line).written.map((file) => path.normalize(file).split('/')[0]));
  for (const name of await readdir(world)) {
    if (name !== '.bin' && !written.has(name)) await symlink(path.join(world, name), path.join(dir, name));
  }
  return dir;
}

interface Ran {
  code: number | null;
  output: string;
}

/** Runs the line through bash as a user's shell would (pipes, redirections, quotes), soup on PATH. */
function shell(line: string, cwd: string): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-o', 'pipefail', '-c', line], {
      cwd,
      env: {
        ...process.env,
        PATH: `${path.join(world, '.bin')}:${process.env.PATH}`,
        NO_COLOR: '1',
        FORCE_COLOR: undefined,
        XDG_CACHE_HOME: TEST_CACHE_HOME,
        // HPC clusters point $SCRATCH at each user's folder on storage all nodes share: --work-dir's example uses it.
        SCRATCH: path.join(cwd, 'scratch'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

/** Each example exits 0 (commander refuses a flag the command lacks with exit 2) and makes what it names. */
function runsAsShown(example: string): void {
  it(example, { timeout: 300_000 }, async () => {
    const dir = await sandboxFor(example);
    const { code, output } = await shell(example, dir);
    assert.equal(code, 0, `exit ${code}:\n${output.slice(-4000)}`);
    for (const file of outputsOf(example).made) assert.ok(existsSync(path.join(dir, file)), `${file} was not written:\n${output.slice(-2000)}`);
  });
}

/** The flags a command's --help lists. */
function flagsOf(command: string): Set<string> {
  const options = help([command])
    .split(/^Options:$/m)[1]!
    .split(/^\S/m)[0]!;
  return new Set([...options.matchAll(/^ {2}(?:(-\w), )?(--[\w-]+)/gm)].flatMap(([, short, long]) => (short === undefined ? [long!] : [short, long!])));
}

/**
 * Examples that cannot run here as written: `--executor slurm` needs the Slurm cluster that
 * test/cli/slurm.test.ts starts (and only that file may), and `...` stands for a command the reader
 * fills in. Their flags are still checked against the command's --help.
 */
const notRunnable = (example: string): string | undefined =>
  /--executor slurm\b/.test(example) ? 'it needs Slurm' : words(example).includes('...') ? 'it holds a ... placeholder' : undefined;

function flagsAreAccepted(example: string, why: string): void {
  it(example, async () => {
    const list = words(example);
    const command = list[1]!;
    assert.ok(COMMANDS.includes(command), `${command} is not a soup command`);
    const known = flagsOf(command);
    const unknown = list.slice(2).filter((word) => /^--?[a-z][\w-]*$/i.test(word) && !known.has(word));
    assert.deepEqual(unknown, [], `not run (${why}), and soup ${command} has no such flag`);
  });
}

const documents = ['README.md', 'docs/COMMANDS.md', 'docs/MERGING.md', 'docs/CLUSTERS.md', 'docs/FORMATS.md'];

/** Every example once, under the first place that shows it (the README repeats the docs' examples). */
const sources: [string, string[]][] = [
  ['soup --help', helpExamples(help([]))],
  ...COMMANDS.map((command): [string, string[]] => [`soup ${command} --help`, helpExamples(help([command]))]),
  ...documents.map((document): [string, string[]] => [document, documentExamples(readFileSync(path.join(REPO, document), 'utf8'))]),
];
const seen = new Set<string>();

// Two sources at a time, two examples of each: the machine's two cores stay busy while one source's
// slowest example (a search) finishes; each example has its own sandbox, so none sees another's files.
describe('every example soup shows a user runs as written', { concurrency: 2 }, () => {
  it("finds the commands in soup --help, and examples in each command's --help and each document", () => {
    assert.ok(COMMANDS.includes('greedy') && COMMANDS.includes('merge'), COMMANDS.join(', '));
    const empty = sources.filter(([, examples]) => examples.length === 0).map(([source]) => source);
    assert.deepEqual(empty, []);
  });
  for (const [source, examples] of sources) {
    const fresh = examples.filter((example) => !seen.has(example));
    for (const example of fresh) seen.add(example);
    if (fresh.length === 0) continue;
    describe(source, { concurrency: 2 }, () => {
      for (const example of fresh) {
        const why = notRunnable(example);
        if (why === undefined) runsAsShown(example);
        else flagsAreAccepted(example, why);
      }
    });
  }
});
