import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const a = await writeSafetensorsFile(path.join(dir, 'one', 'soup.safetensors'), mlpTensors(1));
const same = await writeSafetensorsFile(path.join(dir, 'two', 'soup.safetensors'), mlpTensors(1));
const nudged = mlpTensors(1);
nudged['fc2.bias']!.values = nudged['fc2.bias']!.values!.map((v, i) => (i === 1 ? v + 0.5 : v));
const b = await writeSafetensorsFile(path.join(dir, 'nudged.safetensors'), nudged);

describe('soup diff', () => {
  it('calls two equal checkpoints identical, even when they share a name, exit 0', async () => {
    const result = await runSoup(['diff', a, same]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`${a.replace(/[/.]/g, '\\$&')} and .* are identical \\(4 tensors\\)\\n$`));
  });

  it('reports per-tensor differences and exits 3 above the tolerance', async () => {
    const result = await runSoup(['diff', a, b, '--json']);
    assert.equal(result.code, 3);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.verdict, 'different');
    assert.equal(doc.worst, 'fc2.bias');
    assert.equal(doc.maxAbsDiff, 0.5);
    assert.deepEqual(
      doc.tensors.map((t: { maxAbsDiff: number }) => t.maxAbsDiff),
      [0, 0, 0, 0.5],
    );
    assert.ok(doc.tensors[3].cosine < 1 && doc.tensors[3].cosine > 0.99);
    assert.equal(result.stderr, `soup: ${a} and ${b} differ by at most 5.000e-1 (in fc2.bias), more than the tolerance 0\n`, 'a verdict, not an error');
  });

  it('accepts a difference within --tolerance', async () => {
    const result = await runSoup(['diff', a, b, '--tolerance', '0.5']);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /within the tolerance 0\.5$/m);
  });

  it('exits 2 for checkpoints of different shapes', async () => {
    const wide = mlpTensors(1);
    wide['fc2.bias'] = { dtype: 'F32', shape: [3], values: [1, 2, 3] };
    const result = await runSoup(['diff', a, await writeSafetensorsFile(path.join(dir, 'wide.safetensors'), wide)]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, /size mismatch for fc2\.bias: \[2\]/);
  });
});
