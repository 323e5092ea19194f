/** The uniform soup: every ingredient with the same weight (Wortsman et al., 2022). */
import type { FloatDType } from '../../checkpoint/dtype.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { ProgressListener } from '../../progress.js';
import { countBytes, countParameters } from '../ingredients.js';
import { Mixer } from '../kernel/mix.js';
import type { PreparedOutput, SoupOutcome } from '../write.js';

export function uniformCoefficients(count: number): number[] {
  return Array.from({ length: count }, () => 1);
}

export interface UniformDocument {
  strategy: 'uniform';
  ingredients: { name: string; path: string }[];
  chosen: string[];
  format: string;
  tensors: number;
  parameters: number;
  bytesRead: number;
}

export interface UniformOptions {
  allowNonFinite: boolean;
  dtype?: FloatDType | undefined;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/** The element-wise mean of every ingredient, streamed tensor by tensor into the prepared output's plan. */
export function uniformSoup(checkpoints: readonly Checkpoint[], output: PreparedOutput, options: UniformOptions): SoupOutcome<UniformDocument> {
  const names = checkpoints.map((checkpoint) => checkpoint.name);
  const mixer = new Mixer(checkpoints, { onProgress: options.onProgress, signal: options.signal, allowNonFinite: options.allowNonFinite, threads: true });
  const reference = checkpoints[0]!;
  return {
    producer: mixer.producer(uniformCoefficients(checkpoints.length), { plan: output.tensors }),
    record: { strategy: 'uniform', chosen: names, extra: options.dtype === undefined ? {} : { dtype: options.dtype }, command: options.command },
    document: {
      strategy: 'uniform',
      ingredients: checkpoints.map((checkpoint) => ({ name: checkpoint.name, path: checkpoint.path })),
      chosen: names,
      format: output.target.kind,
      tensors: reference.tensors().length,
      parameters: countParameters(reference),
      bytesRead: checkpoints.reduce((sum, checkpoint) => sum + countBytes(checkpoint), 0),
    },
    close: () => mixer.close(),
  };
}
