/** What the runtimes inside soup (TF.js, ONNX Runtime) ask of the options before they load anything. */
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { Dataset } from '../../data/dataset.js';
import { UsageError } from '../../errors.js';
import type { EvaluationOptions } from '../runtime.js';
import { METRIC_NAMES } from '../metrics.js';

/** The data to score on; refused when none was given, or for a metric these runtimes do not measure. */
export function builtInData(options: EvaluationOptions, data: string | undefined): string {
  if (options.executor === 'slurm') {
    throw new UsageError('--executor slurm runs --eval-cmd evaluations as Slurm jobs; TF.js and ONNX scoring (--val without --eval-cmd) runs in soup itself', {
      hint: 'score with --eval-cmd "python eval.py {ckpt}", or run soup itself in a job (sbatch --wrap "soup ...")',
    });
  }
  if (data === undefined) throw new UsageError('say how to score candidates: --val DATA (TF.js and ONNX models) or --eval-cmd CMD (any framework)');
  if (!(METRIC_NAMES as readonly string[]).includes(options.metric)) {
    throw new UsageError(`--metric: unknown metric "${options.metric}" (TF.js scoring measures ${METRIC_NAMES.join(', ')})`);
  }
  return data;
}

/** The SHA-256 of the data's values as the model sees them (after preprocessing) and its labels. */
export async function datasetHash(dataset: Dataset): Promise<string> {
  const hash = createHash('sha256').update(JSON.stringify(dataset.sampleShape));
  for await (const batch of dataset.batches(4096)) hash.update(new Uint8Array(batch.x.buffer, batch.x.byteOffset, batch.x.byteLength));
  return hash.update(new Uint8Array(dataset.y.buffer, dataset.y.byteOffset, dataset.y.byteLength)).digest('hex');
}

/** "it has a, b, c, d, ...": the first few tensor names of a checkpoint, for errors about a name it lacks. */
export function someTensorNames(reference: Checkpoint): string {
  const names = reference.tensors().map((tensor) => tensor.name);
  return names.slice(0, 4).join(', ') + (names.length > 4 ? ', ...' : '');
}
