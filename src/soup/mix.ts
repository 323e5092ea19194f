import { encodeFloats, isFloatDType } from '../checkpoint/dtype.js';
import type { TensorProducer } from '../checkpoint/safetensors.js';
import type { Checkpoint, OutputTensor, TensorInfo } from '../checkpoint/types.js';
import { InputError, throwIfAborted } from '../errors.js';
import { ignoreProgress, type ProgressListener } from '../progress.js';
import { addScaled, divideInPlace, indexOfNonFinite } from './average.js';

export interface MixOptions {
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Keep NaN and infinities instead of refusing the ingredient that holds them. */
  allowNonFinite?: boolean;
}

/**
 * Streams a weighted mean of checkpoints, one tensor at a time: for each tensor it reads that
 * tensor from each ingredient in turn and adds it into one float64 sum, so memory holds one output
 * tensor and one input tensor whatever the number of ingredients.
 */
export class Mixer {
  private bytesRead = 0;
  /** Bytes the current pass reads, for progress events; set by producer(). */
  private passBytes = 0;
  private readonly onProgress: ProgressListener;
  private readonly warnedCopies = new Set<string>();
  private readonly infos: Map<string, TensorInfo>[];

  constructor(
    private readonly checkpoints: readonly Checkpoint[],
    private readonly options: MixOptions = {},
  ) {
    this.onProgress = options.onProgress ?? ignoreProgress;
    this.infos = checkpoints.map((checkpoint) => new Map(checkpoint.tensors().map((tensor) => [tensor.name, tensor])));
  }

  /** Bytes one full pass with these coefficients will read, for progress totals. */
  bytesToRead(coefficients: readonly number[]): number {
    return this.checkpoints.reduce(
      (sum, checkpoint, k) =>
        coefficients[k] === 0 ? sum : sum + checkpoint.tensors().reduce((bytes, tensor) => bytes + tensor.storedBytes, 0),
      0,
    );
  }

  /** sum_k c_k x_k / sum_k c_k for one float tensor. */
  async mean(tensor: TensorInfo, coefficients: readonly number[]): Promise<Float64Array> {
    const sum = new Float64Array(tensor.shape.reduce((a, b) => a * b, 1));
    const nonZero = coefficients.filter((c) => c !== 0);
    const equal = nonZero.every((c) => c === nonZero[0]);
    let weightTotal = 0;
    let used = 0;
    for (const [k, checkpoint] of this.checkpoints.entries()) {
      const coefficient = coefficients[k]!;
      if (coefficient === 0) continue;
      throwIfAborted(this.options.signal);
      const values = await checkpoint.readFloats(tensor.name);
      addScaled(sum, values, equal ? 1 : coefficient);
      weightTotal += coefficient;
      used++;
      this.advance(k, tensor.name);
    }
    if (used === 0) throw new Error('internal: a soup needs at least one ingredient with a non-zero coefficient');
    divideInPlace(sum, equal ? used : weightTotal);
    if (!this.options.allowNonFinite && indexOfNonFinite(sum) >= 0) await this.blameNonFinite(tensor, coefficients);
    return sum;
  }

  /**
   * Integer and bool tensors (step counters, position ids) cannot be averaged: the first chosen
   * ingredient's values are kept, with a warning if the others disagree.
   */
  async copy(tensor: TensorInfo, coefficients: readonly number[]): Promise<Uint8Array> {
    let kept: Uint8Array | undefined;
    let keptFrom: Checkpoint | undefined;
    const differing: string[] = [];
    for (const [k, checkpoint] of this.checkpoints.entries()) {
      if (coefficients[k] === 0) continue;
      throwIfAborted(this.options.signal);
      const bytes = await checkpoint.readBytes(tensor.name);
      this.advance(k, tensor.name);
      if (kept === undefined) {
        kept = bytes;
        keptFrom = checkpoint;
      } else if (Buffer.compare(kept, bytes) !== 0) {
        differing.push(checkpoint.name);
      }
    }
    if (kept === undefined || keptFrom === undefined) throw new Error('internal: a soup needs at least one ingredient');
    if (differing.length > 0 && !this.warnedCopies.has(tensor.name)) {
      this.warnedCopies.add(tensor.name);
      this.onProgress({
        kind: 'warning',
        message: `${tensor.dtype} tensor "${tensor.name}" differs between ingredients (${differing.join(', ')} differ from ${keptFrom.name}); kept ${keptFrom.name}'s values`,
      });
    }
    return kept;
  }

  /** A producer for a checkpoint writer: each output tensor mixed and encoded in its output dtype. */
  producer(coefficients: readonly number[]): TensorProducer {
    this.passBytes = this.bytesToRead(coefficients);
    this.bytesRead = 0;
    const byName = new Map(this.checkpoints[0]!.tensors().map((tensor) => [tensor.name, tensor]));
    return async (output: OutputTensor) => {
      const tensor = byName.get(output.name)!;
      if (!isFloatDType(output.dtype)) return this.copy(tensor, coefficients);
      return encodeFloats(await this.mean(tensor, coefficients), output.dtype);
    };
  }

  private advance(ingredient: number, name: string): void {
    this.bytesRead += this.infos[ingredient]!.get(name)?.storedBytes ?? 0;
    this.onProgress({ kind: 'read', bytes: this.bytesRead, total: this.passBytes });
  }

  /** The sum is not finite: find the ingredient and element responsible, for the error message. */
  private async blameNonFinite(tensor: TensorInfo, coefficients: readonly number[]): Promise<never> {
    for (const [k, checkpoint] of this.checkpoints.entries()) {
      if (coefficients[k] === 0) continue;
      const values = await checkpoint.readFloats(tensor.name);
      const at = indexOfNonFinite(values);
      if (at >= 0) {
        throw new InputError(checkpoint.path, `holds ${values[at]} at element ${at}; a soup of it would be ${values[at]} too`, {
          tensor: tensor.name,
          hint: 'remove this ingredient, or pass --allow-nonfinite to keep non-finite values',
        });
      }
    }
    throw new InputError(this.checkpoints[0]!.path, 'the weighted mean overflowed to infinity', { tensor: tensor.name });
  }
}

