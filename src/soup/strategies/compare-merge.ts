/** `soup compare --merge`: a mergekit recipe's merge, scored as one more row. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import { closeAll } from '../../checkpoint/discover.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { IncompatibleError, InputError, describeFsError } from '../../errors.js';
import type { ProgressListener } from '../../progress.js';
import { type MergeConfig, parseMergeYaml } from '../merge/config.js';
import { mergeFromConfig } from '../merge/engine.js';
import { openMergeCheckpoints } from '../merge/inputs.js';
import { LayerIndex } from '../merge/methods/parameters.js';
import { type CompareDataset, type CompareRow, scoreMergeRow } from './compare.js';

export interface MergeRecipe {
  file: string;
  config: MergeConfig;
}

export async function readMergeRecipe(file: string): Promise<MergeConfig> {
  const text = await readFile(file, 'utf8').catch((error: unknown) => {
    throw new InputError(file, `--merge: ${describeFsError(error)}`, { cause: error });
  });
  return parseMergeYaml(text, file);
}

/** Scores one --merge recipe's result on every data set; its models must be the compared model's shape. */
export async function scoreMerge(
  { file, config }: MergeRecipe,
  reference: Checkpoint,
  datasets: readonly CompareDataset[],
  options: { metric: string; allowNonFinite: boolean; signal?: AbortSignal; onProgress?: ProgressListener },
): Promise<CompareRow> {
  const opened = await openMergeCheckpoints(config, file);
  try {
    const problems = findIncompatibilities([reference, ...opened.all]);
    if (problems.length > 0) throw new IncompatibleError(problems.map((problem) => `--merge ${file}: ${problem}`));
    const merge = mergeFromConfig(config, opened, {
      seed: 0,
      layers: new LayerIndex(reference.tensors().map((tensor) => tensor.name)),
      allowNonFinite: options.allowNonFinite,
      signal: options.signal,
    });
    const name = `${config.method.name} (${path.basename(file)})`;
    return await scoreMergeRow(
      name,
      merge.weights(),
      opened.models.map((model) => model.name),
      datasets,
      options,
    );
  } finally {
    await closeAll(opened.all);
  }
}
