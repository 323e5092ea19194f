import { readFile, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Sharp, SharpOptions } from 'sharp';
import { InputError, UsageError, describeFsError } from '../errors.js';
import { MAX_IMAGE_SIDE, cropOrigin, resizedSize, type Preprocessing } from './preprocess.js';

const IMAGE_EXTENSIONS = new Set(['.png', '.jpg', '.jpeg']);

/** Larger images are refused before decoding: a header can claim any size, and decoders allocate it. */
const MAX_MEGAPIXELS = 64;
/** Pixels of an image once resized: the largest resize of an image twice as long as it is wide. */
const MAX_RESIZED_PIXELS = 2 * MAX_IMAGE_SIDE * MAX_IMAGE_SIDE;

export interface ImageFile {
  file: string;
  label: number;
  size: number;
  mtimeMs: number;
}

export interface ImageListing {
  classes: string[];
  files: ImageFile[];
}

/** A folder of class sub-folders of PNG/JPEG images; classes are numbered in name order, files sorted by name. */
export async function listImageFolder(folder: string): Promise<ImageListing> {
  const classes: string[] = [];
  for (const entry of (await readdir(folder)).sort()) {
    if (entry.startsWith('.')) continue;
    // A dangling symlink beside the class folders is not a class (stat fails on it), nor is a file.
    const info = await stat(path.join(folder, entry)).catch(() => undefined);
    if (info?.isDirectory()) classes.push(entry);
  }
  if (classes.length === 0) throw new InputError(folder, 'no class sub-folders of images found');
  const files: ImageFile[] = [];
  for (const [label, name] of classes.entries()) {
    const classFolder = path.join(folder, name);
    for (const entry of (await readdir(classFolder)).sort()) {
      if (!IMAGE_EXTENSIONS.has(path.extname(entry).toLowerCase())) continue;
      const file = path.join(classFolder, entry);
      const info = await stat(file).catch((error: unknown) => {
        throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
      });
      // A FIFO or device named x.png would block the read forever: only regular files are images.
      if (!info.isFile()) throw new InputError(file, 'is not a regular file (a FIFO, device or folder named like an image)');
      files.push({ file, label, size: info.size, mtimeMs: info.mtimeMs });
    }
  }
  if (files.length === 0) throw new InputError(folder, 'the class folders hold no PNG or JPEG images');
  return { classes, files };
}

type SharpFactory = (input?: Buffer | Uint8Array, options?: SharpOptions) => Sharp;
let sharpModule: Promise<SharpFactory> | undefined;

/** sharp (libvips) is loaded only when an image folder is decoded; it ships as prebuilt @img/* packages. */
export async function loadSharp(): Promise<SharpFactory> {
  sharpModule ??= import('sharp').then(
    (module) => {
      // Every file is decoded once, so libvips's operation cache would only hold memory (up to 50 MB).
      module.default.cache(false);
      return module.default as unknown as SharpFactory;
    },
    (error: unknown) => {
      sharpModule = undefined;
      throw new UsageError(`image folders are decoded with the sharp package, which cannot be loaded here: ${(error as Error).message.split('\n')[0]}`, {
        hint: 'install it beside soup with `npm install sharp` (its prebuilt libvips comes from the @img/sharp-* packages for this platform; see https://sharp.pixelplumbing.com/install)',
        cause: error,
      });
    },
  );
  return sharpModule;
}

export interface DecodedImage {
  width: number;
  height: number;
  /** 1 (grey, asked for) or 3 (RGB or BGR) */
  channels: number;
  pixels: Uint8Array;
  /** Every pixel has R = G = B (only computed for colour output): a folder of such images is grey. */
  grey: boolean;
}

/** The steps applied to pixels before they are cached as bytes. */
export type ImageSteps = Pick<Preprocessing, 'channels' | 'resize' | 'interpolation' | 'crop'>;

const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const JPEG_MAGIC = Buffer.from([0xff, 0xd8]);

/** What a file that is not PNG or JPEG looks like, for the message refusing it. */
function sniff(bytes: Buffer): string {
  const head = bytes.subarray(0, 256).toString('latin1');
  if (head.startsWith('GIF8')) return 'a GIF image';
  if (head.startsWith('RIFF') && head.slice(8, 12) === 'WEBP') return 'a WebP image';
  if (head.startsWith('II*\0') || head.startsWith('MM\0*')) return 'a TIFF image';
  if (/<svg|<\?xml/i.test(head.trimStart().slice(0, 256))) return 'an SVG or XML file';
  if (head.slice(4, 8) === 'ftyp') return 'an AVIF/HEIF image';
  return 'an unknown format';
}

/**
 * Images are decoded by what their bytes are, not their name: libvips reads TIFF, GIF, WebP and SVG
 * too (SVG can reference other files), and a data set of those named .png would be scored silently.
 */
function checkImageKind(bytes: Buffer, file: string): void {
  if (bytes.subarray(0, 8).equals(PNG_MAGIC) || bytes.subarray(0, 2).equals(JPEG_MAGIC)) return;
  throw new InputError(file, `is not a PNG or JPEG image (its bytes look like ${sniff(bytes)}); soup reads PNG and JPEG only`);
}

function checkPngSize(bytes: Buffer, file: string): void {
  if (bytes.subarray(0, 8).equals(PNG_MAGIC) && bytes.length >= 24) {
    const pixels = bytes.readUInt32BE(16) * bytes.readUInt32BE(20);
    if (pixels > MAX_MEGAPIXELS * 1e6)
      throw new InputError(file, `image claims ${bytes.readUInt32BE(16)}x${bytes.readUInt32BE(20)} pixels, more than the ${MAX_MEGAPIXELS} megapixels allowed`);
  }
}

/**
 * Decodes one image and applies the image steps in torchvision's order: EXIF orientation, conversion
 * to RGB (alpha dropped, grey replicated) or to grey (PIL's luma), resize of the shorter side, center
 * crop (zero padding where the image is smaller). Pixels come out as bytes, height-width-channels.
 */
export async function decodeImage(bytes: Buffer, file: string, steps: ImageSteps): Promise<DecodedImage> {
  checkImageKind(bytes, file);
  checkPngSize(bytes, file);
  const sharp = await loadSharp();
  let decoded: { data: Buffer; info: { width: number; height: number; channels: number } };
  try {
    decoded = await sharp(bytes, { failOn: 'warning', limitInputPixels: MAX_MEGAPIXELS * 1e6 })
      .autoOrient()
      .toColourspace('srgb')
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (error) {
    throw new InputError(file, `cannot decode image: ${firstLine(error)}`, { cause: error });
  }
  let { width, height } = decoded.info;
  let channels = steps.channels === 'grey' ? 1 : 3;
  let pixels = toChannels(decoded.data, width * height, decoded.info.channels, steps.channels === 'grey');
  if (steps.resize !== undefined) {
    const size = resizedSize(width, height, steps.resize);
    // The shorter side becomes `resize`: a thin image would become a huge one.
    if (size.width * size.height > MAX_RESIZED_PIXELS) {
      throw new InputError(
        file,
        `resize ${steps.resize} turns this ${width}x${height} image into ${size.width}x${size.height} pixels, more than the ${MAX_RESIZED_PIXELS} allowed`,
      );
    }
    if (size.width !== width || size.height !== height) {
      try {
        pixels = await sharp(pixels, { raw: { width, height, channels: channels as 1 | 3 } })
          .resize(size.width, size.height, { fit: 'fill', kernel: steps.interpolation === 'bicubic' ? 'cubic' : 'linear' })
          .raw()
          .toBuffer();
      } catch (error) {
        throw new InputError(file, `cannot resize image: ${firstLine(error)}`, { cause: error });
      }
      ({ width, height } = size);
    }
  }
  if (steps.crop !== undefined) {
    pixels = centerCrop(pixels, width, height, channels, steps.crop);
    width = height = steps.crop;
  }
  const grey = channels === 3 && isGrey(pixels);
  if (steps.channels === 'bgr') {
    for (let p = 0; p < pixels.length; p += 3) {
      const red = pixels[p]!;
      pixels[p] = pixels[p + 2]!;
      pixels[p + 2] = red;
    }
  }
  channels = steps.channels === 'grey' ? 1 : 3;
  return { width, height, channels, pixels, grey };
}

/** libvips repeats its warnings line after line; the first says what is wrong. */
function firstLine(error: unknown): string {
  return (error as Error).message.split('\n')[0]!.trim();
}

/** RGB from 1 to 4 decoded channels (grey replicated, alpha dropped as PIL's convert('RGB') does), or PIL's integer luma. */
function toChannels(data: Buffer, pixels: number, from: number, grey: boolean): Uint8Array {
  if (from === 3 && !grey) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (from <= 2 && grey) {
    if (from === 1) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(pixels);
    for (let p = 0; p < pixels; p++) out[p] = data[p * 2]!;
    return out;
  }
  const out = new Uint8Array(pixels * (grey ? 1 : 3));
  for (let p = 0, at = 0; p < pixels; p++, at += from) {
    const r = data[at]!;
    const g = from >= 3 ? data[at + 1]! : r;
    const b = from >= 3 ? data[at + 2]! : r;
    if (grey) {
      out[p] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    } else {
      out[p * 3] = r;
      out[p * 3 + 1] = g;
      out[p * 3 + 2] = b;
    }
  }
  return out;
}

function isGrey(pixels: Uint8Array): boolean {
  for (let p = 0; p < pixels.length; p += 3) if (pixels[p] !== pixels[p + 1] || pixels[p] !== pixels[p + 2]) return false;
  return true;
}

function centerCrop(pixels: Uint8Array, width: number, height: number, channels: number, size: number): Uint8Array {
  const { left, top } = cropOrigin(width, height, size);
  const out = new Uint8Array(size * size * channels);
  for (let row = 0; row < size; row++) {
    const y = top + row;
    if (y < 0 || y >= height) continue;
    const from = Math.max(0, left);
    const to = Math.min(width, left + size);
    if (to <= from) continue;
    out.set(pixels.subarray((y * width + from) * channels, (y * width + to) * channels), (row * size + from - left) * channels);
  }
  return out;
}

/** Reads and decodes one listed image. */
export async function readImage(file: string, steps: ImageSteps): Promise<DecodedImage> {
  const bytes = await readFile(file).catch((error: unknown) => {
    throw new InputError(file, `cannot read: ${describeFsError(error)}`, { cause: error });
  });
  return decodeImage(bytes, file, steps);
}
