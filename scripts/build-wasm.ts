/**
 * Compiles the WebAssembly averaging kernel (src/soup/kernel.wat) into dist/src/soup/kernel.wasm;
 * `npm run build` and `prepare` run it after tsc.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const source = fileURLToPath(new URL('../../src/soup/kernel.wat', import.meta.url));
const target = fileURLToPath(new URL('../src/soup/kernel.wasm', import.meta.url));
const wabt = await wabtInit();
const module = wabt.parseWat(source, await readFile(source, 'utf8'), { simd: true });
module.validate();
await writeFile(target, module.toBinary({}).buffer);
module.destroy();
