import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import { openSingle } from '../../src/soup/single.js';
import { tempDir, writeSafetensorsFile } from '../helpers/files.js';

const dir = await tempDir();
const one = (name: string) => writeSafetensorsFile(path.join(dir, name), { w: { dtype: 'F32', shape: [1], values: [1] } });

describe('openSingle', () => {
  it('opens the one checkpoint a path holds, and refuses a folder of several with the reason the command gives', async () => {
    const a = await openSingle(await one('a.safetensors'), {}, 'we want one');
    assert.equal(a.name, 'a');
    await a.close();
    await one('b.safetensors');
    await assert.rejects(openSingle(dir, {}, 'soup eval scores one'), { message: `${dir} holds 2 checkpoints; soup eval scores one` });
  });
});
