import { closeAll, discoverIngredients, openAll, type DiscoverOptions } from '../checkpoint/discover.js';
import { findIncompatibilities } from '../checkpoint/compatible.js';
import { checkOnnxIngredients } from '../checkpoint/onnx/compatible.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { IncompatibleError } from '../errors.js';

/**
 * Finds, opens and cross-checks the ingredients from headers alone, so that a bad file or a shape
 * mismatch is reported before any weight is read. The caller closes them (closeAll).
 */
/** How ingredients are found and opened: PyTorch's --key, warnings, and ONNX's --allow-fused. */
export interface OpenOptions extends DiscoverOptions {
  allowFused?: boolean | undefined;
}

export async function openIngredients(inputs: readonly string[], options: OpenOptions = {}): Promise<Checkpoint[]> {
  const checkpoints = await openAll(await discoverIngredients(inputs, options));
  try {
    await checkOnnxIngredients(checkpoints, options);
  } catch (error) {
    await closeAll(checkpoints);
    throw error;
  }
  const problems = findIncompatibilities(checkpoints);
  if (problems.length > 0) {
    await closeAll(checkpoints);
    throw new IncompatibleError(problems);
  }
  return checkpoints;
}

export function countParameters(checkpoint: Checkpoint): number {
  return checkpoint.tensors().reduce((sum, tensor) => sum + tensor.shape.reduce((a, b) => a * b, 1), 0);
}

export function countBytes(checkpoint: Checkpoint): number {
  return checkpoint.tensors().reduce((sum, tensor) => sum + tensor.storedBytes, 0);
}
