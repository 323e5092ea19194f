import { isFloatDType } from './dtype.js';
import type { Checkpoint } from './types.js';

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * Every reason these checkpoints cannot be souped together, checked from headers alone so that a
 * mismatch is found before any weight is read. Float dtypes may differ (they are averaged in float);
 * a float tensor and an integer one may not.
 */
export function findIncompatibilities(checkpoints: readonly Checkpoint[]): string[] {
  const [reference, ...others] = checkpoints;
  if (reference === undefined) return [];
  const problems: string[] = [];
  const expected = new Map(reference.tensors().map((tensor) => [tensor.name, tensor]));
  for (const other of others) {
    const present = new Set<string>();
    for (const tensor of other.tensors()) {
      present.add(tensor.name);
      const want = expected.get(tensor.name);
      if (want === undefined) {
        problems.push(`${other.path}: has tensor "${tensor.name}", which ${reference.path} lacks`);
      } else if (formatShape(want.shape) !== formatShape(tensor.shape)) {
        problems.push(
          `size mismatch for ${tensor.name}: ${formatShape(want.shape)} in ${reference.path} vs ${formatShape(tensor.shape)} in ${other.path}`,
        );
      } else if (isFloatDType(want.dtype) !== isFloatDType(tensor.dtype)) {
        problems.push(`dtype mismatch for ${tensor.name}: ${want.dtype} in ${reference.path} vs ${tensor.dtype} in ${other.path}`);
      }
    }
    for (const name of expected.keys()) {
      if (!present.has(name)) problems.push(`${other.path}: missing tensor "${name}", which ${reference.path} has`);
    }
  }
  return problems;
}
