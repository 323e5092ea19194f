import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { runSoup } from '../helpers/cli.js';
import { mlpTensors, tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const a = await writeSafetensorsFile(path.join(dir, 'a.safetensors'), mlpTensors(1), { format: 'pt' });
const b = await writeSafetensorsFile(path.join(dir, 'b.safetensors'), mlpTensors(2));
const wide = mlpTensors(3);
wide['fc2.bias'] = { dtype: 'F32', shape: [3], values: [1, 2, 3] };
const c = await writeSafetensorsFile(path.join(dir, 'other', 'c.safetensors'), wide);

describe('soup inspect', () => {
  it('lists format, tensors, parameters, size and metadata', async () => {
    const result = await runSoup(['inspect', a]);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^a {2}.*a\.safetensors$/m);
    assert.match(result.stdout, /^ {2}safetensors, 4 tensors, 26 parameters, 104 B$/m);
    assert.match(result.stdout, /^ {2}fc1\.weight {2}F32 {4}\[4, 3\]$/m);
    assert.match(result.stdout, /^ {2}metadata: format=pt$/m);
  });

  it('says when several checkpoints can be souped together', async () => {
    const result = await runSoup(['inspect', a, b]);
    assert.equal(result.code, 0);
    assert.match(result.stdout, /These 2 checkpoints can be souped together\./);
  });

  it('says exactly why checkpoints cannot be souped together, and exits 2', async () => {
    const result = await runSoup(['inspect', a, c]);
    assert.equal(result.code, 2);
    assert.match(
      result.stdout,
      /These 2 checkpoints cannot be souped together:\n {2}- size mismatch for fc2\.bias: \[2\] in .*a\.safetensors vs \[3\] in .*c\.safetensors/,
    );
    assert.match(result.stderr, /^soup: error: size mismatch for fc2\.bias/);
  });

  it('describes checkpoints in one JSON document with --json', async () => {
    const result = await runSoup(['inspect', a, c, '--json']);
    const doc = JSON.parse(result.stdout);
    assert.equal(doc.compatible, false);
    assert.equal(doc.problems.length, 1);
    assert.deepEqual(doc.checkpoints[0].tensors[0], { name: 'fc1.weight', dtype: 'F32', shape: [4, 3] });
    assert.equal(doc.checkpoints[0].parameters, 26);
    assert.deepEqual(doc.checkpoints[0].metadata, { format: 'pt' });
  });
});
