import { writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * An --eval-cmd scorer for safetensors runs of one 3-vector `w`: its loss is the squared distance to
 * (0.2, 0.5, 0.3), a NaN loss printed as Python prints it. Returns the command, {ckpt} in place.
 */
export async function distanceScorer(dir: string): Promise<string> {
  const scorer = path.join(dir, 'score.mjs');
  await writeFile(
    scorer,
    `import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
const start = 8 + Number(bytes.readBigUInt64LE(0));
const w = [0, 1, 2].map((i) => bytes.readFloatLE(start + 4 * i));
const loss = w.reduce((s, v, i) => s + (v - [0.2, 0.5, 0.3][i]) ** 2, 0);
console.log(Number.isNaN(loss) ? '{"loss": NaN}' : JSON.stringify({ loss }));
`,
  );
  return `node '${scorer}' {ckpt}`;
}

/** An --eval-cmd scorer for safetensors runs of one weight `w`: accuracy 1 - |w - 0.5|. Returns the command, {ckpt} in place. */
export async function halfwayScorer(dir: string): Promise<string> {
  const scorer = path.join(dir, 'score.mjs');
  await writeFile(
    scorer,
    `import { readFileSync } from 'node:fs';
const bytes = readFileSync(process.argv[2]);
console.log(1 - Math.abs(bytes.readFloatLE(8 + Number(bytes.readBigUInt64LE(0))) - 0.5));
`,
  );
  return `node '${scorer}' {ckpt}`;
}
