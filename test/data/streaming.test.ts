import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { tempDir } from '../helpers/files.js';

const dir = await tempDir();
const datasetModule = new URL('../../src/data/dataset.js', import.meta.url).href;

/** A folder of `count` 32x32 RGB PNGs in 4 classes (few distinct files: decoding, not variety, is what costs). */
async function makeFolder(name: string, count: number): Promise<string> {
  const folder = path.join(dir, name);
  const variants = await Promise.all(
    Array.from({ length: 8 }, (_, v) => {
      const raw = Buffer.alloc(32 * 32 * 3);
      for (let i = 0; i < raw.length; i++) raw[i] = (i * (v + 3) + v * 37) % 256;
      return sharp(raw, { raw: { width: 32, height: 32, channels: 3 } })
        .png()
        .toBuffer();
    }),
  );
  for (let c = 0; c < 4; c++) await mkdir(path.join(folder, `class-${c}`), { recursive: true });
  // Synchronous writes: 20,000 small files are created far faster without a thread-pool round trip each.
  for (let i = 0; i < count; i++) writeFileSync(path.join(folder, `class-${i % 4}`, `${String(i).padStart(5, '0')}.png`), variants[i % 8]!);
  return folder;
}

interface Run {
  n: number;
  state: string;
  sum: number;
  /** Peak resident memory growth over the process's memory before the data set was opened, in MB. */
  growthMB: number;
  seconds: number;
}

/** Opens the folder in a fresh process, streams every batch, and reports the peak memory it took. */
async function streamInChild(folder: string): Promise<Run> {
  const script = `
    import sharp from 'sharp';
    const { loadDataset } = await import(${JSON.stringify(datasetModule)});
    // Load sharp and TypedArray machinery first, so the baseline holds everything but the data.
    await sharp({ create: { width: 8, height: 8, channels: 3, background: '#000' } }).raw().toBuffer();
    const before = process.memoryUsage().rss;
    const started = performance.now();
    const dataset = await loadDataset(${JSON.stringify(folder)}, { scale: 1 / 255 }, { cacheDir: ${JSON.stringify(path.join(dir, 'cache'))} });
    let sum = 0;
    for await (const batch of dataset.batches(256)) for (let i = 0; i < batch.x.length; i += 97) sum += batch.x[i];
    const growthMB = (process.resourceUsage().maxRSS * 1024 - before) / 2 ** 20;
    console.log(JSON.stringify({ n: dataset.n, state: dataset.cache.state, sum, growthMB, seconds: (performance.now() - started) / 1000 }));
  `;
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], {
    cwd: path.dirname(new URL(import.meta.url).pathname),
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout) as Run;
}

describe('data larger than memory', () => {
  it('streams a 20,000-image folder in memory that does not grow with the number of images', { timeout: 180_000 }, async () => {
    const small = await streamInChild(await makeFolder('small', 2_000));
    const large = await streamInChild(await makeFolder('large', 20_000));
    assert.equal(large.n, 20_000);
    assert.equal(large.state, 'built');
    // Held in memory as float32, the large folder would take 20,000 * 32 * 32 * 3 * 4 bytes = 234 MB.
    console.log(`# 2,000 images: ${JSON.stringify(small)}; 20,000: ${JSON.stringify(large)}`);
    assert.ok(
      large.growthMB - small.growthMB < 60,
      `peak memory grew by ${large.growthMB.toFixed(0)} MB for 20,000 images, ${small.growthMB.toFixed(0)} MB for 2,000`,
    );
    const again = await streamInChild(path.join(dir, 'large'));
    assert.equal(again.state, 'hit');
    assert.equal(again.sum, large.sum, 'the cache gives the values the first pass gave');
    assert.ok(again.seconds < large.seconds, `reading the cache (${again.seconds.toFixed(1)} s) is faster than decoding (${large.seconds.toFixed(1)} s)`);
  });
});
