import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import { InputError, describeFsError } from '../errors.js';

export interface ImageData {
  x: Float32Array;
  y: Int32Array;
  /** [height, width, channels]: 1 channel when every image is grey, else 3 (RGB; alpha dropped). */
  sampleShape: number[];
  classes: string[];
}

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Larger images are refused before decoding: a header can claim any size, and decoders allocate it. */
const MAX_MEGAPIXELS = 64;

function decode(bytes: Buffer, file: string): { width: number; height: number; rgba: Uint8Array } {
  if (file.toLowerCase().endsWith('.png') && bytes.length >= 24) {
    const pixels = bytes.readUInt32BE(16) * bytes.readUInt32BE(20);
    if (pixels > MAX_MEGAPIXELS * 1e6) throw new InputError(file, `image claims ${bytes.readUInt32BE(16)}x${bytes.readUInt32BE(20)} pixels, more than the ${MAX_MEGAPIXELS} megapixels allowed`);
  }
  try {
    if (file.toLowerCase().endsWith('.png')) {
      const png = PNG.sync.read(bytes);
      return { width: png.width, height: png.height, rgba: png.data };
    }
    const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxMemoryUsageInMB: 512, maxResolutionInMP: MAX_MEGAPIXELS });
    return { width: image.width, height: image.height, rgba: image.data };
  } catch (error) {
    throw new InputError(file, `cannot decode image: ${(error as Error).message}`, { cause: error });
  }
}

/** A folder of class sub-folders of PNG/JPEG images; classes are numbered in name order. */
export async function readImageFolder(folder: string): Promise<ImageData> {
  const classes: string[] = [];
  for (const entry of (await readdir(folder)).sort()) {
    if (!entry.startsWith('.') && (await stat(path.join(folder, entry))).isDirectory()) classes.push(entry);
  }
  if (classes.length === 0) throw new InputError(folder, 'no class sub-folders of images found');
  const decoded: { rgba: Uint8Array; label: number }[] = [];
  let size: { width: number; height: number; file: string } | undefined;
  for (const [label, name] of classes.entries()) {
    const classFolder = path.join(folder, name);
    for (const entry of (await readdir(classFolder)).sort()) {
      if (!IMAGE_EXTENSIONS.has(path.extname(entry).toLowerCase())) continue;
      const file = path.join(classFolder, entry);
      const bytes = await readFile(file).catch((error: unknown) => {
        throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
      });
      const image = decode(bytes, file);
      size ??= { width: image.width, height: image.height, file };
      if (image.width !== size.width || image.height !== size.height) {
        throw new InputError(file, `image is ${image.width}x${image.height}, but ${size.file} is ${size.width}x${size.height}; all images must have one size`);
      }
      decoded.push({ rgba: image.rgba, label });
    }
  }
  if (size === undefined) throw new InputError(folder, 'the class folders hold no PNG or JPEG images');
  const pixels = size.width * size.height;
  const grey = decoded.every(({ rgba }) => {
    for (let p = 0; p < pixels; p++) if (rgba[4 * p] !== rgba[4 * p + 1] || rgba[4 * p] !== rgba[4 * p + 2]) return false;
    return true;
  });
  const channels = grey ? 1 : 3;
  const x = new Float32Array(decoded.length * pixels * channels);
  decoded.forEach(({ rgba }, i) => {
    const base = i * pixels * channels;
    for (let p = 0; p < pixels; p++) for (let c = 0; c < channels; c++) x[base + p * channels + c] = rgba[4 * p + c]!;
  });
  return { x, y: Int32Array.from(decoded, (d) => d.label), sampleShape: [size.height, size.width, channels], classes };
}
