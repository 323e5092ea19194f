import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';

const root = new URL('../../', import.meta.url).pathname;

async function documents(): Promise<string[]> {
  const docs = (await readdir(path.join(root, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => path.join('docs', name));
  return ['README.md', ...docs.sort()];
}

/** The text outside fenced code blocks: a `#` or `](` inside an example is not a heading or a link. */
function prose(text: string): string {
  return text
    .split(/^```.*$/m)
    .filter((_, i) => i % 2 === 0)
    .join('\n');
}

/** Anchors as GitHub makes them from headings: lower case, punctuation dropped, spaces as dashes. */
function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  for (const [, heading] of prose(text).matchAll(/^#{1,6} (.+)$/gm)) {
    anchors.add(
      heading!
        .toLowerCase()
        .replace(/[^\p{L}\p{N}_\- ]/gu, '')
        .replace(/ /g, '-'),
    );
  }
  return anchors;
}

describe('docs', () => {
  it('keeps every relative link in the README and docs/ pointing at a file and heading that exist', async () => {
    const broken: string[] = [];
    for (const file of await documents()) {
      const text = await readFile(path.join(root, file), 'utf8');
      for (const [, target] of prose(text).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [linked, anchor] = target!.split('#') as [string, string | undefined];
        const resolved = linked === '' ? path.join(root, file) : path.resolve(path.dirname(path.join(root, file)), linked);
        if (!existsSync(resolved)) {
          broken.push(`${file}: ${target} (no such file)`);
        } else if (anchor !== undefined && resolved.endsWith('.md') && !anchorsOf(await readFile(resolved, 'utf8')).has(anchor)) {
          broken.push(`${file}: ${target} (no such heading)`);
        }
      }
    }
    assert.deepEqual(broken, []);
  });

  it('keeps the README under 400 lines, with the main job and the test command on its first lines', async () => {
    const lines = (await readFile(path.join(root, 'README.md'), 'utf8')).split('\n');
    assert.ok(lines.length < 400, `README.md has ${lines.length} lines`);
    const top = lines.slice(0, 20).map((line) => line.trim());
    assert.ok(top.includes('npm ci && ./bin/soup.js greedy fixtures/ingredients --val fixtures/data/val -o greedy-soup --force'));
    assert.ok(top.includes('bash scripts/test-deps.sh && npm test'));
  });

  it('links every document in docs/ from the README', async () => {
    const readme = await readFile(path.join(root, 'README.md'), 'utf8');
    const unlinked = (await documents()).slice(1).filter((file) => !readme.includes(`](${file})`));
    assert.deepEqual(unlinked, []);
  });
});
