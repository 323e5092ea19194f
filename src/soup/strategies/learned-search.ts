/**
 * The learned soup without gradients: CMA-ES over the mixing weights' logits, for models soup can
 * only score (ONNX Runtime, --eval-cmd). As in the paper's learned soup the weights are a softmax
 * of logits, so every candidate is a convex mix; one logit per ingredient (--by ingredient) or per
 * ingredient and block of layers (--by block). Ingredients are held in memory, each candidate is
 * mixed from them in float64 and rounded once to float32, and the soup written is that candidate.
 */
import { isFloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint, TensorInfo } from '../../checkpoint/types.js';
import type { CandidateWeights } from '../../eval/evaluator.js';
import type { FloatArray } from '../kernel/average.js';
import { findNonFinite, type Divergence } from '../diverged.js';
import { softmax } from './learned.js';
import { LayerIndex } from '../merge/methods/parameters.js';
import { sha256Text } from '../../eval/score-cache.js';
import type { SearchSpace } from '../search/run.js';

export type SearchBy = 'ingredient' | 'block';

/** A run left out for its non-finite weights: named, with its first bad value as every command reports it. */
export interface Diverged extends Divergence {
  name: string;
  path: string;
}

/**
 * Blocks of tensors: by the layer index in their names (LayerIndex's pattern, "layers.3."), else by
 * the module the tensor belongs to (its name without the last part: "dense_1/kernel" -> "dense_1"),
 * in order of first appearance; `groups` joins neighbouring blocks into that many.
 */
export function tensorBlocks(
  tensors: readonly TensorInfo[],
  groups?: number,
  layers: LayerIndex = new LayerIndex(tensors.map((tensor) => tensor.name)),
): { labels: string[]; of: Map<string, number> } {
  const moduleOf = (name: string): string => {
    const layer = layers.layerOf(name);
    if (layer !== undefined) return `layer ${layer}`;
    const cut = Math.max(name.lastIndexOf('.'), name.lastIndexOf('/'));
    return cut > 0 ? name.slice(0, cut) : name;
  };
  const modules: string[] = [];
  const moduleIndex = new Map<string, number>();
  for (const tensor of tensors) {
    const key = moduleOf(tensor.name);
    if (!moduleIndex.has(key)) {
      moduleIndex.set(key, modules.length);
      modules.push(key);
    }
  }
  const count = Math.min(groups ?? modules.length, modules.length);
  // Contiguous groups of nearly equal size, in model order.
  const groupOf = (m: number): number => Math.floor((m * count) / modules.length);
  const labels = Array.from({ length: count }, (_, g) => {
    const members = modules.filter((_, m) => groupOf(m) === g);
    return members.length === 1 ? members[0]! : `${members[0]} .. ${members.at(-1)}`;
  });
  return { labels, of: new Map(tensors.map((tensor) => [tensor.name, groupOf(moduleIndex.get(moduleOf(tensor.name))!)])) };
}

/** Every ingredient's float tensors in memory, each read once, and which ingredients hold non-finite values. */
export async function loadIngredients(
  checkpoints: readonly Checkpoint[],
  signal?: AbortSignal,
): Promise<{ thetas: Map<string, FloatArray[]>; kept: Checkpoint[]; diverged: Diverged[] }> {
  const floats = checkpoints[0]!.tensors().filter((tensor) => isFloatDType(tensor.dtype));
  const diverged: Diverged[] = [];
  const kept: Checkpoint[] = [];
  const values: Map<string, FloatArray>[] = [];
  for (const checkpoint of checkpoints) {
    const own = new Map<string, FloatArray>();
    const divergence = await findNonFinite(checkpoint, signal, (tensor, read) => own.set(tensor, read));
    if (divergence !== undefined) diverged.push({ name: checkpoint.name, path: checkpoint.path, ...divergence });
    else {
      kept.push(checkpoint);
      values.push(own);
    }
  }
  const thetas = new Map(floats.map((tensor) => [tensor.name, values.map((own) => own.get(tensor.name)!)]));
  return { thetas, kept, diverged };
}

/** A candidate of the search: the mixing weights, one row of alphas (per kept ingredient) per group. */
export interface Mix {
  alphas: number[][];
}

export class MixingSpace implements SearchSpace<Mix> {
  readonly dimension: number;
  readonly start: number[];
  readonly floats: readonly TensorInfo[];
  readonly groups: { labels: string[]; of: Map<string, number> };

  constructor(
    /** The ingredients mixed (diverged ones already left out). */
    readonly checkpoints: readonly Checkpoint[],
    private readonly thetas: Map<string, FloatArray[]>,
    readonly by: SearchBy,
    blocks: number | undefined,
    /** Each ingredient's SHA-256 (journal keys); empty without a journal. */
    private readonly hashes: readonly string[],
    readonly sigma: number,
    layers?: LayerIndex,
  ) {
    const reference = checkpoints[0]!;
    this.floats = reference.tensors().filter((tensor) => isFloatDType(tensor.dtype));
    this.groups =
      by === 'ingredient' ? { labels: ['all tensors'], of: new Map(this.floats.map((tensor) => [tensor.name, 0])) } : tensorBlocks(this.floats, blocks, layers);
    this.dimension = this.groups.labels.length * checkpoints.length;
    // Equal logits: the search starts at the uniform soup.
    this.start = new Array(this.dimension).fill(0);
  }

  decode(point: Float64Array): Mix {
    const n = this.checkpoints.length;
    return { alphas: this.groups.labels.map((_, g) => softmax(point.subarray(g * n, (g + 1) * n))) };
  }

  key(mix: Mix): string {
    return sha256Text(JSON.stringify({ method: `learned-${this.by}`, groups: this.groups.labels, ingredients: this.hashes, alphas: mix.alphas }));
  }

  label(mix: Mix): string {
    const shown = mix.alphas[0]!.map((alpha, k) => `${this.checkpoints[k]!.name}=${alpha.toFixed(3)}`).join(' ');
    return this.groups.labels.length === 1 ? shown : `${shown} (first of ${this.groups.labels.length} blocks)`;
  }

  /** The alphas of one tensor, per kept ingredient. */
  alphasOf(mix: Mix, tensor: string): number[] {
    return mix.alphas[this.groups.of.get(tensor)!]!;
  }

  /** sum_k alpha_k theta_k in float64, in ingredient order, rounded once to float32; other tensors from the first ingredient. */
  weights(mix: Mix): CandidateWeights {
    const reference = this.checkpoints[0]!;
    const cache = new Map<string, Float32Array>();
    return {
      tensors: reference.tensors(),
      floats: async (name) => {
        const known = cache.get(name);
        if (known !== undefined) return known;
        const thetas = this.thetas.get(name);
        if (thetas === undefined) throw new Error(`internal: "${name}" is not a float tensor of the learned soup`);
        const alphas = this.alphasOf(mix, name);
        const sums = new Float64Array(thetas[0]!.length);
        for (const [k, theta] of thetas.entries()) {
          const alpha = alphas[k]!;
          for (let i = 0; i < sums.length; i++) sums[i]! += alpha * theta[i]!;
        }
        const out = Float32Array.from(sums);
        cache.set(name, out);
        return out;
      },
      bytes: (name) => reference.readBytes(name),
    };
  }

  /** {tensor: {ingredient: alpha}} over every ingredient, a left-out one at 0: learned's JSON and recipe field. */
  weightsByTensor(mix: Mix, all: readonly Checkpoint[]): Record<string, Record<string, number>> {
    return Object.fromEntries(
      this.floats.map((tensor) => {
        const alphas = this.alphasOf(mix, tensor.name);
        return [tensor.name, Object.fromEntries(all.map((checkpoint) => [checkpoint.name, alphas[this.checkpoints.indexOf(checkpoint)] ?? 0]))];
      }),
    );
  }

  /** {block: {ingredient: alpha}}, the same weights by search group. */
  weightsByGroup(mix: Mix, all: readonly Checkpoint[]): Record<string, Record<string, number>> {
    return Object.fromEntries(
      this.groups.labels.map((label, g) => [
        label,
        Object.fromEntries(all.map((checkpoint) => [checkpoint.name, mix.alphas[g]![this.checkpoints.indexOf(checkpoint)] ?? 0])),
      ]),
    );
  }
}
