import path from 'node:path';
import { DATASET_JSON, type Dataset } from './dataset.js';

/**
 * Image folders are fed as decoded, 0-255 values unless something says otherwise. A model trained on
 * 0-1 or normalised inputs scores far below its real accuracy on them, and nothing else would show
 * why: so the user is told what the model is fed and which flags change it.
 */
export function rawPixelsWarning(dataset: Dataset): string | undefined {
  if (dataset.format !== 'images') return undefined;
  const steps = dataset.preprocessing;
  if (steps.preprocess !== undefined || steps.scale !== undefined || steps.offset !== undefined || steps.mean !== undefined || steps.std !== undefined)
    return undefined;
  const shape = dataset.sampleShape.join('x');
  return (
    `${dataset.path}: the model is fed raw pixel values 0-255 (${shape}, ${dataset.sampleShape.at(-1) === 1 ? 'grey' : (steps.channels ?? 'rgb').toUpperCase()}), ` +
    `as no preprocessing flag and no ${DATASET_JSON} says otherwise; --scale 1/255 feeds 0-1, --preprocess imagenet or clip normalises as those models expect, ` +
    `--mean/--std set your own, or write them in ${path.join(dataset.path, DATASET_JSON)}`
  );
}
