import { writeFile } from 'node:fs/promises';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';

/** A mergekit YAML recipe of these lines, written to `file`. */
export async function writeRecipe(file: string, lines: readonly string[]): Promise<string> {
  await writeFile(file, `${lines.join('\n')}\n`);
  return file;
}

/** A TIES recipe merging `a` and `b` onto `base`, each with weight 1 and density 0.5. */
export function tiesLines(base: string, a: string, b: string): string[] {
  return [
    'merge_method: ties',
    `base_model: ${base}`,
    'models:',
    `  - model: ${a}`,
    '    parameters: {weight: 1, density: 0.5}',
    `  - model: ${b}`,
    '    parameters: {weight: 1, density: 0.5}',
  ];
}

/** The values of tensor `w` in a .safetensors file. */
export async function readW(file: string): Promise<number[]> {
  const checkpoint = await SafetensorsFile.open(file);
  try {
    return [...(await checkpoint.readFloats('w'))];
  } finally {
    await checkpoint.close();
  }
}

/** An --eval-cmd script, written to `file`, whose accuracy is the first value of the candidate's first tensor (a .safetensors file). */
export async function writeFirstValueScorer(file: string): Promise<string> {
  await writeFile(
    file,
    `import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
console.log(JSON.stringify({ accuracy: bytes.readFloatLE(8 + Number(bytes.readBigUInt64LE(0))) }));
`,
  );
  return file;
}
