import assert from 'node:assert/strict';
import { cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { discoverIngredients } from '../../src/checkpoint/discover.js';
import { hubCacheDir, hubIdOf, parseHubReference } from '../../src/checkpoint/hf-cache.js';
import { runSoup } from '../helpers/cli.js';
import { tempDir } from '../helpers/files.js';

const LORA = fileURLToPath(new URL('../../../fixtures/lora', import.meta.url));
const hub = await tempDir('soup-hub-');
const MAIN = 'a'.repeat(40);
const V1 = 'b'.repeat(40);

/** A model in the cache as huggingface-cli download leaves it: refs, snapshots per commit. */
async function cached(id: string, refs: Record<string, string>): Promise<void> {
  const repo = path.join(hub, `models--${id.replace('/', '--')}`);
  for (const [ref, commit] of Object.entries(refs)) {
    await mkdir(path.join(repo, 'refs', path.dirname(ref)), { recursive: true });
    await writeFile(path.join(repo, 'refs', ref), commit);
    await cp(path.join(LORA, 'base'), path.join(repo, 'snapshots', commit), { recursive: true });
  }
}
await cached('org/tiny', { main: MAIN, v1: V1 });
await cached('org/other', { main: MAIN });
await cp(path.join(LORA, 'adapter-qv'), path.join(hub, 'models--org--tiny-lora', 'snapshots', MAIN), { recursive: true });
await mkdir(path.join(hub, 'models--org--tiny-lora', 'refs'), { recursive: true });
await writeFile(path.join(hub, 'models--org--tiny-lora', 'refs', 'main'), MAIN);

describe('Hugging Face cache references', () => {
  it('finds the cache where huggingface_hub does', () => {
    assert.equal(hubCacheDir({ HF_HUB_CACHE: '/a', HF_HOME: '/b' }), '/a');
    assert.equal(hubCacheDir({ HF_HOME: '/b' }), '/b/hub');
    assert.equal(hubCacheDir({ XDG_CACHE_HOME: '/c' }), '/c/huggingface/hub');
  });

  it('reads org/name and @revision, and leaves paths alone', () => {
    assert.deepEqual(parseHubReference('mistralai/Mistral-7B-v0.1'), { id: 'mistralai/Mistral-7B-v0.1', revision: 'main' });
    assert.deepEqual(parseHubReference('org/model@v1.0'), { id: 'org/model', revision: 'v1.0' });
    assert.equal(parseHubReference('runs/model.safetensors'), undefined);
    assert.equal(parseHubReference('../a/b'), undefined);
    assert.equal(parseHubReference('model'), undefined);
    assert.equal(hubIdOf(`/h/models--org--tiny/snapshots/${MAIN}/model.safetensors`), 'org/tiny');
  });

  it('resolves a reference to its snapshot by ref or commit, named after the model', async () => {
    process.env.HF_HUB_CACHE = hub;
    try {
      const [main, v1, commit] = await Promise.all(['org/tiny', 'org/tiny@v1', `org/tiny@${V1}`].map((typed) => discoverIngredients([typed])));
      assert.equal(main![0]!.path, path.join(hub, 'models--org--tiny', 'snapshots', MAIN, 'model.safetensors'));
      assert.equal(main![0]!.name, 'tiny');
      assert.equal(v1![0]!.path, path.join(hub, 'models--org--tiny', 'snapshots', V1, 'model.safetensors'));
      assert.equal(commit![0]!.path, v1![0]!.path);
      const [lora] = await discoverIngredients(['org/tiny+org/tiny-lora']);
      assert.equal(lora!.name, 'tiny+tiny-lora');
      assert.equal(lora!.adapter, path.join(hub, 'models--org--tiny-lora', 'snapshots', MAIN));
    } finally {
      delete process.env.HF_HUB_CACHE;
    }
  });

  it('soups models named by reference, and says how to download one that is not cached', async () => {
    const out = path.join(hub, 'soup.safetensors');
    const env = { HF_HUB_CACHE: hub };
    const ok = await runSoup(['uniform', 'org/tiny', 'org/other', '-o', out, '--json'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(JSON.parse(ok.stdout).chosen, ['other', 'tiny']);
    const missing = await runSoup(['uniform', 'org/absent@v2', 'org/tiny', '-o', out], { env });
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      `soup: error: org/absent@v2: not a model path, and not in the Hugging Face cache (${hub}); soup does not download (fetch it first: huggingface-cli download org/absent --revision v2)\n`,
    );
    const badRef = await runSoup(['uniform', 'org/tiny@v9', 'org/other', '-o', out], { env });
    assert.equal(
      badRef.stderr,
      `soup: error: org/tiny@v9: revision v9 is not in the Hugging Face cache (${hub}); soup does not download (fetch it first: huggingface-cli download org/tiny --revision v9)\n`,
    );
  });

  it("reads Hub references in a merge recipe, and lists the models in the card's base_model", async () => {
    const file = path.join(hub, 'merge.yml');
    await writeFile(
      file,
      ['merge_method: linear', 'models:', '  - model: org/tiny@v1', '    parameters: {weight: 1}', '  - model: org/other', '    parameters: {weight: 1}'].join(
        '\n',
      ),
    );
    const out = path.join(hub, 'merged');
    const result = await runSoup(['merge', file, '-o', out, '--quiet'], { env: { HF_HUB_CACHE: hub } });
    assert.equal(result.code, 0, result.stderr);
    const card = await readFile(path.join(out, 'README.md'), 'utf8');
    assert.match(card, /^---\n(?:.*\n)*?base_model:\n- org\/tiny\n- org\/other\n---/);
  });
});
