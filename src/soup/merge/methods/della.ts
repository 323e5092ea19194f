/**
 * DELLA (Deep, Bhardwaj and Poria, 2024) as mergekit's della_magprune runs it: each task-vector
 * entry is kept with a probability that grows with its magnitude rank along dimension 1 (rows of a
 * matrix; the whole vector for 1-D tensors), from density - epsilon (smallest) to density + epsilon
 * (largest); kept entries are rescaled to the unmasked delta's L1 norm (mergekit's rescale), then
 * combined with TIES's sign election (della) or linearly (della_linear).
 *
 * The draws come from dare's counter-based generator keyed by (seed, tensor, ingredient): entry i
 * (row-major) is kept when its number is below its probability. mergekit draws with torch.bernoulli,
 * so its masks cannot be reproduced bit for bit; results agree in distribution.
 */
import { UsageError } from '../../../errors.js';
import { CounterRandom } from './dare.js';
import type { MergeMethod, TensorInputs } from './method.js';
import { number, type ParameterDefs } from './parameters.js';
import { applyMask, taskVectorMethod, taskVectorParameters } from './task-vectors.js';

const epsilon = {
  scope: 'model',
  schema: number(),
  default: 0.15,
  description: 'spread of the keep probabilities around density (density +/- epsilon)',
} as const;

/** Ranks (0-based, smallest |delta| first, equal magnitudes by index) of each fiber along dimension 1. */
function ranksAlongDim1(delta: Float64Array, shape: readonly number[]): { rank: Float64Array; width: number } {
  const width = shape.length < 2 ? delta.length : shape[1]!;
  const inner = shape.length < 2 ? 1 : shape.slice(2).reduce((a, b) => a * b, 1);
  const rank = new Float64Array(delta.length);
  const order = new Array<number>(width);
  for (let start = 0; start < delta.length; start += width * inner) {
    for (let k = 0; k < inner; k++) {
      for (let j = 0; j < width; j++) order[j] = start + j * inner + k;
      order.sort((a, b) => Math.abs(delta[a]!) - Math.abs(delta[b]!) || a - b);
      order.forEach((at, r) => (rank[at] = r));
    }
  }
  return { rank, width };
}

/** mergekit's della_magprune with seeded draws. */
export function magnitudePrune(
  delta: Float64Array,
  density: number,
  epsilon: number,
  rescale: boolean,
  inputs: Pick<TensorInputs, 'seed' | 'tensor'>,
  ingredient: string,
): Float64Array {
  if (density >= 1) return delta;
  if (density + epsilon >= 1 || density - epsilon <= 0) {
    throw new UsageError(`della: density ${density} +/- epsilon ${epsilon} for ${ingredient}, tensor "${inputs.tensor.name}", leaves (0, 1)`, {
      hint: 'choose epsilon so that density - epsilon > 0 and density + epsilon < 1',
    });
  }
  const { rank, width } = ranksAlongDim1(delta, inputs.tensor.shape);
  const random = new CounterRandom(inputs.seed, inputs.tensor.name, ingredient);
  const keep = new Uint8Array(delta.length);
  for (let i = 0; i < delta.length; i++) {
    // A fiber of one element has no rank spread (mergekit divides 0 by 0 there): it keeps with p = density.
    const position = width > 1 ? rank[i]! / (width - 1) : 0.5;
    keep[i] = random.at(i) < density - epsilon + position * 2 * epsilon ? 1 : 0;
  }
  return applyMask(delta, keep, rescale);
}

function sparsify(delta: Float64Array, k: number, inputs: TensorInputs): Float64Array {
  const own = inputs.params[k]!;
  return magnitudePrune(delta, own.density as number, own.epsilon as number, inputs.global.rescale as boolean, inputs, inputs.names[k]!);
}

export const della: MergeMethod = taskVectorMethod({
  name: 'della',
  description: 'drop task-vector entries with magnitude-ranked probabilities, rescale, elect signs as TIES does',
  consensus: true,
  parameters: { ...taskVectorParameters({ normalize: true, rescale: true }), epsilon } satisfies ParameterDefs,
  sparsify,
});

export const dellaLinear: MergeMethod = taskVectorMethod({
  name: 'della_linear',
  description: 'drop task-vector entries with magnitude-ranked probabilities, rescale, add the weighted sum to the base',
  consensus: false,
  parameters: { ...taskVectorParameters({ normalize: false, rescale: true }), epsilon } satisfies ParameterDefs,
  sparsify,
});
