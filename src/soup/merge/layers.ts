import { UsageError } from '../../errors.js';
import { LayerIndex } from './methods/parameters.js';

/** The layer stacks of a checkpoint's tensor names, found by --layer-pattern (a regular expression) or mergekit's default. */
export function layerIndexFor(names: readonly string[], layerPattern: string | undefined): LayerIndex {
  if (layerPattern === undefined) return new LayerIndex(names);
  let pattern: RegExp;
  try {
    pattern = new RegExp(layerPattern);
  } catch (error) {
    throw new UsageError(`--layer-pattern: not a regular expression: ${(error as Error).message}`);
  }
  return new LayerIndex(names, pattern);
}
