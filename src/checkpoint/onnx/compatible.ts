import { IncompatibleError } from '../../errors.js';
import type { Checkpoint } from '../types.js';
import { OnnxCheckpoint } from './reader.js';
import { findFusedWeights, fusedError } from './refusals.js';

const formatShape = (shape: readonly number[]): string => `[${shape.join(', ')}]`;

/**
 * ONNX ingredients must be exports of one architecture: identical graphs apart from initializer
 * data, initializers with the same names, dims and dtypes, and identical integer initializers
 * (shape constants). Reads only the integer initializers; throws on the first difference.
 */
export async function checkOnnxIngredients(checkpoints: readonly Checkpoint[], options: { allowFused?: boolean } = {}): Promise<void> {
  const models = checkpoints.filter((checkpoint): checkpoint is OnnxCheckpoint => checkpoint instanceof OnnxCheckpoint);
  if (models.length === 0) return;
  if (!options.allowFused && checkpoints.length > 1) {
    for (const model of models) {
      const fused = findFusedWeights(model.scan);
      if (fused.length > 0) throw fusedError(model.path, fused);
    }
  }
  const [first, ...others] = models;
  if (first === undefined) return;
  for (const other of others) {
    const difference = describeDifference(first, other);
    if (difference !== undefined) throw new IncompatibleError([difference]);
  }
  for (const initializer of first.scan.initializers) {
    if (['F32', 'F16', 'BF16', 'F64'].includes(initializer.dtype)) continue;
    const expected = Buffer.from(await first.readBytes(initializer.name));
    const differing = [];
    for (const other of others) if (!expected.equals(await other.readBytes(initializer.name))) differing.push(other.path);
    if (differing.length > 0) {
      throw new IncompatibleError([
        `${initializer.dtype} initializer "${initializer.name}" differs between ${first.path} and ${differing.join(', ')}: integer and bool initializers are shape constants and must be identical`,
      ]);
    }
  }
}

function describeDifference(a: OnnxCheckpoint, b: OnnxCheckpoint): string | undefined {
  const notSame = `${a.path} and ${b.path} are not exports of the same architecture`;
  const theirs = new Map(b.scan.initializers.map((initializer) => [initializer.name, initializer]));
  for (const mine of a.scan.initializers) {
    const other = theirs.get(mine.name);
    if (other === undefined) return `${notSame}: ${mine.name} is an initializer of ${a.path} only`;
    if (formatShape(mine.dims) !== formatShape(other.dims)) {
      return `${notSame}: ${mine.name} is ${formatShape(mine.dims)} in one and ${formatShape(other.dims)} in the other`;
    }
    if (mine.dtype !== other.dtype) return `${notSame}: ${mine.name} is ${mine.dtype} in one and ${other.dtype} in the other`;
    theirs.delete(mine.name);
  }
  const extra = theirs.keys().next();
  if (!extra.done) return `${notSame}: ${extra.value} is an initializer of ${b.path} only`;
  const advice = 'export every ingredient with the same torch version, opset and flags';
  const [nodesA, nodesB] = [a.scan.nodes, b.scan.nodes];
  for (let i = 0; i < Math.min(nodesA.length, nodesB.length); i++) {
    const [x, y] = [nodesA[i]!, nodesB[i]!];
    if (x.hash === y.hash) continue;
    const ops = x.opType === y.opType ? `${x.opType} in both, with different inputs or attributes` : `${x.opType} vs ${y.opType}`;
    return `the graphs of ${a.path} and ${b.path} differ at node ${i} (${ops}): ${advice}`;
  }
  if (nodesA.length !== nodesB.length)
    return `the graphs of ${a.path} and ${b.path} differ: ${nodesA.length} nodes in one, ${nodesB.length} in the other: ${advice}`;
  if (a.scan.interfaceHash !== b.scan.interfaceHash) return `the graphs of ${a.path} and ${b.path} differ in their inputs, outputs or opsets: ${advice}`;
  return undefined;
}
