/**
 * The build after tsc (`npm run build`, `prepare`):
 * 1. assembles the WebAssembly averaging kernel, written by src/soup/kernel/source.ts, into
 *    dist/src/soup/kernel/kernel.wasm (and kernel-shared.wasm, the same over a shared memory);
 * 2. bundles tfjs-core's gradient functions into dist/src/eval/tfjs-gradients.js (see below);
 * 3. bundles the command line into dist/cli with esbuild, the entry point bin/soup.js loads.
 *
 * Why a bundle: Node 20 loads every ES module file with its own resolution and asynchronous reads,
 * and the CLI's ~55 files (with commander, zod and chalk) took 70-80 ms to import, paid by every
 * command. One file per command takes about a third of that. The bundle keeps the lazy loading of
 * commands (code splitting), and dist/src stays as tsc wrote it for the tests and for library use.
 */
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import wabtInit from 'wabt';
import { kernelSource } from '../src/soup/kernel/source.js';

const fromDist = (relative: string): string => fileURLToPath(new URL(`../${relative}`, import.meta.url));

const wabt = await wabtInit();
const kernels = ['kernel.wasm', 'kernel-shared.wasm'];
for (const name of kernels) {
  const shared = name === 'kernel-shared.wasm';
  const module = wabt.parseWat(name, kernelSource(shared), { simd: true, threads: true });
  // wabt's validator refuses shared memories whatever the features; V8 validates both as it compiles them.
  if (!shared) module.validate();
  await writeFile(fromDist(`src/soup/kernel/${name}`), module.toBinary({}).buffer);
  module.destroy();
}

// soup depends on tfjs-core, not the @tensorflow/tfjs umbrella, and only the umbrella registers the
// gradient functions of every op (the learned soup needs them). tfjs-core ships them only as ES
// modules Node cannot load (extensionless imports), so esbuild bundles them here. The ops they use
// come along as a second copy; it finds the one engine and registries through TF.js's globals.
const gradients = fromDist('src/eval/tfjs-gradients.js');
const tfjsCore = path.dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-core/package.json'));
const requireBanner = "import { createRequire as soupCreateRequire } from 'node:module'; const require = soupCreateRequire(import.meta.url);";
await build({
  entryPoints: [path.join(tfjsCore, 'dist', 'register_all_gradients.js')],
  outfile: gradients,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  banner: { js: requireBanner },
  logLevel: 'warning',
});

const bundle = fromDist('cli');
await rm(bundle, { recursive: true, force: true });
await build({
  // Worker entry points keep their names: the code starts them by URL beside itself.
  entryPoints: ['src/cli/main.js', 'src/checkpoint/hash-worker.js', 'src/eval/score-worker.js', 'src/soup/kernel/worker.js'].map(fromDist),
  outdir: bundle,
  entryNames: '[name]',
  chunkNames: '[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: true,
  // TensorFlow.js is large, loaded only to score, and finds its backends by package name; sharp loads a native library.
  external: ['@tensorflow/*', 'sharp'],
  // Bundled CommonJS packages (commander) require Node's built-in modules.
  banner: { js: requireBanner },
  logLevel: 'warning',
});
for (const name of kernels) await copyFile(fromDist(`src/soup/kernel/${name}`), `${bundle}/${name}`);
await copyFile(gradients, `${bundle}/tfjs-gradients.js`);
