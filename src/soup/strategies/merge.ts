/** soup merge: a mergekit recipe (a YAML file or the flags) merged into one checkpoint, which keeps the recipe as mergekit writes it. */
import { readFile } from 'node:fs/promises';
import type { FloatDType } from '../../checkpoint/dtype.js';
import { isFloatDType } from '../../checkpoint/dtype.js';
import { hubIdOf } from '../../checkpoint/hf-cache.js';
import type { TensorProducer } from '../../checkpoint/safetensors.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import type { ProgressListener } from '../../progress.js';
import { Mixer } from '../kernel/mix.js';
import { mergekitYaml, type MergeConfig } from '../merge/config.js';
import { mergeFromConfig } from '../merge/engine.js';
import { refuseSingleFileCompanions, tokenizerFiles, type MergeCheckpoints } from '../merge/inputs.js';
import { layerIndexFor } from '../merge/layers.js';
import { linear, plainMeanWeights, refuseZeroSum } from '../merge/methods/linear.js';
import type { MergeMethod } from '../merge/methods/method.js';
import type { ParameterValue } from '../merge/methods/parameters.js';
import { withLayerCount } from '../merge/slices.js';
import { isFolderOutput, type PreparedOutput, type SoupOutcome } from '../write.js';

/** The recipe a folder output holds beside the weights, as mergekit names it. */
export const MERGEKIT_CONFIG = 'mergekit_config.yml';

/** What `soup merge` reports (--json), less what writing adds. */
export interface MergeDocument {
  strategy: 'merge';
  method: string;
  base: { name: string; path: string } | null;
  ingredients: { name: string; path: string }[];
  chosen: string[];
  parameters: Record<string, ParameterValue>;
  modelParameters: Record<string, Record<string, ParameterValue>>;
  randomSeed: number;
  format: string;
}

/** A merge, and the files its folder output holds beside the weights (mergekit_config.yml, a tokenizer, a renumbered config.json). */
export interface MergeOutcome extends SoupOutcome<MergeDocument> {
  moreFiles: Map<string, Uint8Array>;
}

export interface MergeSoupOptions {
  /** The recipe file, or "the command line": where errors about the recipe point. */
  source: string;
  /** The output's dtype (--dtype, else the recipe's out_dtype or dtype), for the recipe. */
  dtype?: FloatDType | undefined;
  randomSeed: number;
  /** --layer-pattern: how tensor names give their layer, for gradient parameters. */
  layerPattern?: string | undefined;
  allowNonFinite: boolean;
  /** The arguments that made the soup, for its recipe. */
  command: readonly string[];
  onProgress?: ProgressListener;
  signal?: AbortSignal;
}

/**
 * What the output of a merge is checked against: its tensors follow the base (else the first model);
 * its config and tokenizer come from the base, else the first model; it may not overwrite any input.
 */
export function mergeOutputPlan(opened: MergeCheckpoints): { shape: Checkpoint[]; companionsFrom: Checkpoint[]; protect: string[] } {
  return {
    shape: [opened.base ?? opened.models[0]!],
    companionsFrom: opened.slices !== undefined ? opened.all : opened.base === undefined ? opened.models : [opened.base, ...opened.models],
    protect: opened.all.flatMap((checkpoint) => [checkpoint.path, ...checkpoint.files]),
  };
}

/** The merge `config` describes over its opened checkpoints, planned into the prepared output. */
export async function mergeSoup(config: MergeConfig, opened: MergeCheckpoints, output: PreparedOutput, options: MergeSoupOptions): Promise<MergeOutcome> {
  const reference = opened.base ?? opened.models[0]!;
  const yaml = mergekitYaml(config);
  const moreFiles = await folderFiles(config, opened, output, yaml, options.source);
  const merge = mergeFromConfig(config, opened, {
    seed: options.randomSeed,
    layers: layerIndexFor(
      reference.tensors().map((tensor) => tensor.name),
      options.layerPattern,
    ),
    allowNonFinite: options.allowNonFinite,
    signal: options.signal,
    onProgress: options.onProgress,
  });
  const chosen = opened.models.map((model) => model.name);
  const modelParameters = Object.fromEntries(opened.models.map((model, k) => [model.name, config.models[k]!.parameters]));
  const extra = {
    method: config.method.name,
    base: opened.base?.name ?? null,
    parameters: config.parameters,
    // Every global parameter as the merge used it, defaults included, so the recipe says what ran.
    resolvedParameters: { ...globalDefaults(config.method), ...config.parameters },
    modelParameters,
    randomSeed: options.randomSeed,
    ...hubModelsOf(opened.all),
    ...(options.layerPattern === undefined ? {} : { layerPattern: options.layerPattern }),
    ...(options.dtype === undefined ? {} : { dtype: options.dtype }),
    mergekit: yaml,
  };
  const fast = fastLinear(config, opened.models, options);
  return {
    producer: fast?.producer() ?? merge.producer(),
    record: { strategy: 'merge', chosen, extra, command: options.command },
    document: {
      strategy: 'merge',
      method: config.method.name,
      base: opened.base === undefined ? null : { name: opened.base.name, path: opened.base.path },
      ingredients: opened.models.map((model) => ({ name: model.name, path: model.path })),
      chosen,
      parameters: config.parameters,
      modelParameters,
      randomSeed: options.randomSeed,
      format: output.target.kind,
    },
    moreFiles,
    close: () => fast?.mixer.close(),
  };
}

/** What a folder output holds beside the weights; a tokenizer_source asks for a folder. */
async function folderFiles(
  config: MergeConfig,
  opened: MergeCheckpoints,
  output: PreparedOutput,
  yaml: string,
  source: string,
): Promise<Map<string, Uint8Array>> {
  const folder = isFolderOutput(output.target);
  const renumbered = opened.slices === undefined ? undefined : await configWithLayers(output, opened.slices.layers);
  const files = new Map<string, Uint8Array>();
  if (config.tokenizerSource !== undefined) {
    if (!folder) refuseSingleFileCompanions(output.target.path, `tokenizer_source: ${config.tokenizerSource}`);
    for (const [name, bytes] of await tokenizerFiles(config.tokenizerSource, opened, config, source)) files.set(name, bytes);
  }
  if (folder) files.set(MERGEKIT_CONFIG, new TextEncoder().encode(yaml));
  if (folder && renumbered !== undefined) files.set('config.json', new TextEncoder().encode(renumbered));
  return files;
}

/** A linear merge that is a plain weighted mean streams through the chunked mixer, as fast as soup uniform. */
function fastLinear(
  config: MergeConfig,
  models: readonly Checkpoint[],
  options: Pick<MergeSoupOptions, 'allowNonFinite' | 'onProgress' | 'signal'>,
): { mixer: Mixer; producer: () => TensorProducer } | undefined {
  if (config.method !== linear || config.slices !== undefined) return undefined;
  const weights = plainMeanWeights(
    config.parameters,
    config.models.map((entry) => entry.parameters),
  );
  if (weights === undefined) return undefined;
  const firstFloat = models[0]!.tensors().find((tensor) => isFloatDType(tensor.dtype));
  if (weights.reduce((a, b) => a + b, 0) === 0 && firstFloat !== undefined) refuseZeroSum(firstFloat.name);
  const mixer = new Mixer(models, { onProgress: options.onProgress, signal: options.signal, allowNonFinite: options.allowNonFinite, threads: true });
  return { mixer, producer: () => mixer.producer(weights) };
}

/** The config.json a sliced merge's folder gets: the copied one, with the output's layer count. */
async function configWithLayers(output: PreparedOutput, layers: number): Promise<string | undefined> {
  const from = output.modelFiles?.companions.files.get('config.json');
  if (from === undefined) return undefined;
  return withLayerCount(await readFile(from, 'utf8'), layers);
}

/** The Hugging Face ids of the inputs read from the Hub cache, for the card's base_model. */
function hubModelsOf(checkpoints: readonly Checkpoint[]): { hubModels?: string[] } {
  const ids = [...new Set(checkpoints.map((checkpoint) => hubIdOf(checkpoint.path)).filter((id): id is string => id !== undefined))];
  return ids.length === 0 ? {} : { hubModels: ids };
}

function globalDefaults(method: MergeMethod): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(method.parameters)
      .filter(([, def]) => def.scope === 'global' && def.default !== undefined)
      .map(([name, def]) => [name, def.default]),
  );
}
