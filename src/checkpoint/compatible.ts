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
    const prefixed = describePrefix(reference, other) ?? describePrefix(other, reference);
    if (prefixed !== undefined) {
      problems.push(prefixed);
      continue;
    }
    const present = new Set<string>();
    for (const tensor of other.tensors()) {
      present.add(tensor.name);
      const want = expected.get(tensor.name);
      if (want === undefined) {
        problems.push(`${other.path}: has tensor "${tensor.name}", which ${reference.path} lacks`);
      } else if (formatShape(want.shape) !== formatShape(tensor.shape)) {
        problems.push(`size mismatch for ${tensor.name}: ${formatShape(want.shape)} in ${reference.path} vs ${formatShape(tensor.shape)} in ${other.path}`);
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

const PREFIX_ORIGINS: Record<string, string> = {
  'module.': 'added by DataParallel or DistributedDataParallel',
  '_orig_mod.': 'added by torch.compile',
};

/**
 * When every name of `prefixed` is a name of `plain` with one more leading component (`module.`,
 * `_orig_mod.`), the ingredients are the same model saved two ways: say so, and how to fix it.
 */
function describePrefix(prefixed: Checkpoint, plain: Checkpoint): string | undefined {
  const long = prefixed.tensors().map((tensor) => tensor.name);
  const short = new Set(plain.tensors().map((tensor) => tensor.name));
  const first = long[0];
  if (first === undefined || long.length !== short.size) return undefined;
  for (let dot = first.indexOf('.'); dot > 0; dot = first.indexOf('.', dot + 1)) {
    const prefix = first.slice(0, dot + 1);
    if (!long.every((name) => name.startsWith(prefix) && short.has(name.slice(prefix.length)))) continue;
    const origin = PREFIX_ORIGINS[prefix];
    return (
      `the tensor names differ only by a prefix: every name in ${prefixed.path} starts with "${prefix}"` +
      `${origin === undefined ? '' : ` (${origin})`}, which the names in ${plain.path} lack; save the state dict without it: ` +
      `{k.removeprefix("${prefix}"): v for k, v in state_dict.items()}`
    );
  }
  return undefined;
}
