import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { closeAll, discoverIngredients, openAll } from '../../src/checkpoint/discover.js';
import { chooseOutput, fileSuffixOf, formats, registerFormat, type Format } from '../../src/checkpoint/formats.js';
import type { Checkpoint, TensorInfo } from '../../src/checkpoint/types.js';
import { UsageError } from '../../src/errors.js';
import { readRecipe } from '../../src/recipe/recipe.js';
import { openIngredients } from '../../src/soup/ingredients.js';
import { Mixer } from '../../src/soup/kernel/mix.js';
import { uniformCoefficients } from '../../src/soup/strategies/uniform.js';
import { prepareOutput, writeSoup } from '../../src/soup/write.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

/** A toy format, written here and nowhere in src/: JSON with float values, one file per checkpoint. */
interface ToyFile {
  metadata: Record<string, string>;
  tensors: { name: string; shape: number[]; values: number[] }[];
}

class ToyCheckpoint implements Checkpoint {
  readonly format = 'toy';
  constructor(
    readonly name: string,
    readonly path: string,
    private readonly content: ToyFile,
  ) {}

  get metadata(): Record<string, string> {
    return this.content.metadata;
  }

  get files(): string[] {
    return [this.path];
  }

  tensors(): TensorInfo[] {
    return this.content.tensors.map(({ name, shape, values }) => ({ name, shape, dtype: 'F32', storedBytes: values.length * 4 }));
  }

  private values(name: string): Float32Array {
    return Float32Array.from(this.content.tensors.find((tensor) => tensor.name === name)!.values);
  }

  async readFloats(name: string): Promise<Float32Array> {
    return this.values(name);
  }

  async readFloatRange(name: string, start: number, count: number): Promise<Float32Array> {
    return this.values(name).slice(start, start + count);
  }

  async readBytes(name: string): Promise<Uint8Array> {
    return new Uint8Array(this.values(name).buffer);
  }

  async close(): Promise<void> {}
}

const toy: Format = {
  name: 'toy',
  title: 'Toy',
  detect: { suffixes: ['.toy'] },
  open: async (file, name) => new ToyCheckpoint(name, file, JSON.parse(await readFile(file, 'utf8')) as ToyFile),
  output: {
    suffixes: ['.toy'],
    single: 'file',
    owns: (reference) => reference.format === 'toy',
    checkDtypes: async ({ target, tensors }) => {
      const bad = tensors.find((tensor) => tensor.dtype !== 'F32');
      if (bad !== undefined) throw new UsageError(`${target.path}: a toy file stores F32 only, not ${bad.dtype} ("${bad.name}")`);
    },
    write: async (file, { tensors, metadata, produce }) => {
      const out: ToyFile = { metadata: {}, tensors: [] };
      for (const [index, tensor] of tensors.entries()) {
        const values: number[] = [];
        for await (const chunk of produce(tensor, index)) values.push(...new Float32Array(chunk.slice().buffer));
        out.tensors.push({ name: tensor.name, shape: tensor.shape, values });
      }
      out.metadata = await metadata.resolve();
      await writeFile(file, JSON.stringify(out));
      return [''];
    },
  },
};

const dir = await tempDir();
const toyFile = (seed: number): ToyFile => ({
  metadata: {},
  tensors: [
    { name: 'w', shape: [2, 2], values: [seed, seed + 1, seed + 2, seed + 3] },
    { name: 'b', shape: [2], values: [seed / 2, -seed] },
  ],
});

async function uniformSoup(checkpoints: Checkpoint[], out: string): Promise<void> {
  const output = await prepareOutput(checkpoints, { out });
  const mixer = new Mixer(checkpoints, {});
  const names = checkpoints.map((checkpoint) => checkpoint.name);
  await writeSoup(checkpoints, output, mixer.producer(uniformCoefficients(checkpoints.length), { plan: output.tensors }), {
    strategy: 'uniform',
    chosen: names,
  }).finally(() => mixer.close());
}

describe('the format registry', () => {
  let unregister: () => void;
  before(async () => {
    unregister = registerFormat(toy);
    await writeFile(path.join(dir, 'a.toy'), JSON.stringify(toyFile(1)));
    await writeFile(path.join(dir, 'b.toy'), JSON.stringify(toyFile(3)));
    await writeSafetensorsFile(path.join(dir, 'st', 'one.safetensors'), mlpTensors(1));
    await writeSafetensorsFile(path.join(dir, 'st', 'two.safetensors'), mlpTensors(2));
  });
  after(() => unregister());

  it('finds, opens, soups and writes a format added through the registry alone', async () => {
    const checkpoints = await openIngredients([path.join(dir, 'a.toy'), path.join(dir, 'b.toy')]);
    try {
      assert.deepEqual(
        checkpoints.map((checkpoint) => [checkpoint.name, checkpoint.format]),
        [
          ['a', 'toy'],
          ['b', 'toy'],
        ],
      );
      await uniformSoup(checkpoints, path.join(dir, 'soup.toy'));
    } finally {
      await closeAll(checkpoints);
    }
    const [soup] = await openAll(await discoverIngredients([path.join(dir, 'soup.toy')]));
    assert.ok(soup instanceof ToyCheckpoint);
    assert.deepEqual([...(await soup.readFloats('w'))], [2, 3, 4, 5]);
    assert.deepEqual([...(await soup.readFloats('b'))], [1, -2]);
    assert.equal(readRecipe(soup)?.strategy, 'uniform');
    assert.deepEqual(readRecipe(soup)?.chosen, ['a', 'b']);
  });

  it("writes other formats' soups into it when -o has its suffix, and its own soups into safetensors", async () => {
    const fromSafetensors = await openIngredients([path.join(dir, 'st')]);
    try {
      await uniformSoup(fromSafetensors, path.join(dir, 'st-soup.toy'));
    } finally {
      await closeAll(fromSafetensors);
    }
    const [soup] = await openAll(await discoverIngredients([path.join(dir, 'st-soup.toy')]));
    assert.deepEqual(
      [...(await soup!.readFloats('fc1.bias'))],
      mlpTensors(1)['fc1.bias']!.values!.map((v, i) => (v + mlpTensors(2)['fc1.bias']!.values![i]!) / 2),
    );
    const toys = await openIngredients([path.join(dir, 'a.toy'), path.join(dir, 'b.toy')]);
    try {
      assert.equal(fileSuffixOf(toys[0]!), '.toy');
      assert.deepEqual(chooseOutput('out.safetensors', toys[0]!), { kind: 'safetensors', path: 'out.safetensors' });
    } finally {
      await closeAll(toys);
    }
  });

  it('lists the added suffix among those -o knows, and finds it in folders', async () => {
    const reference = (await openIngredients([path.join(dir, 'a.toy')]))[0]!;
    assert.throws(() => chooseOutput('soup.toyy', reference), {
      message: 'soup.toyy: .toyy is not a suffix soup writes: .safetensors, .onnx, .pt, .pth, .bin, .ckpt or .toy make one file, no suffix a folder',
    });
    const found = await discoverIngredients([dir]);
    assert.deepEqual(
      found.filter((ingredient) => ingredient.format === 'toy').map((ingredient) => ingredient.name),
      ['a', 'b', 'soup', 'st-soup'],
    );
  });
});

describe('chooseOutput', () => {
  let reference: Checkpoint;
  before(async () => {
    reference = (await openIngredients([path.join(dir, 'st', 'one.safetensors')]))[0]!;
  });

  it('refuses a misspelt or unknown suffix, naming the known ones and the nearest', () => {
    assert.throws(
      () => chooseOutput('soup.safetensor', reference),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.equal(
          error.message,
          'soup.safetensor: .safetensor is not a suffix soup writes: .safetensors, .onnx, .pt, .pth, .bin or .ckpt make one file, no suffix a folder',
        );
        assert.equal(error.hint, 'did you mean .safetensors? For a folder named so, end it with a slash: soup.safetensor/');
        assert.equal(error.exitCode, 2);
        return true;
      },
    );
    assert.throws(() => chooseOutput('soup.json', reference), { hint: 'check the spelling. For a folder named so, end it with a slash: soup.json/' });
  });

  it('takes dots that are no suffix, and a trailing slash, as folder names', () => {
    for (const out of ['run-1.5', 'soup.v2/', 'soups/my.model/']) assert.deepEqual(chooseOutput(out, reference), { kind: 'safetensors-folder', path: out });
  });

  it('keeps every built-in format in one list, in order of preference', () => {
    assert.deepEqual(
      formats().map((format) => format.name),
      ['tfjs', 'safetensors', 'onnx', 'pytorch'],
    );
  });
});
