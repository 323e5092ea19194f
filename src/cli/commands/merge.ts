import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { closeAll } from '../../checkpoint/discover.js';
import { UsageError } from '../../errors.js';
import { formatBytes, formatSeconds } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { mergeFromConfig } from '../../soup/merge/engine.js';
import { mergekitYaml, parseMergeYaml, readRecipeFile, type MergeConfig } from '../../soup/merge/config.js';
import { openMergeCheckpoints, refuseSingleFileCompanions, tokenizerFiles } from '../../soup/merge/inputs.js';
import { isFloatDType } from '../../checkpoint/dtype.js';
import type { TensorProducer } from '../../checkpoint/safetensors.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { Mixer } from '../../soup/kernel/mix.js';
import { linear, plainMeanWeights, refuseZeroSum } from '../../soup/merge/methods/linear.js';
import type { MergeMethod } from '../../soup/merge/methods/method.js';
import { isFolderOutput, prepareModelFiles, prepareOutput, writeSoup, type PreparedOutput } from '../../soup/write.js';
import { withLayerCount } from '../../soup/merge/slices.js';
import { hubIdOf } from '../../checkpoint/hf-cache.js';
import { configFromFlags, givesParameters, layerIndex, mergeOptions } from '../merge-options.js';
import { commandArguments, commonOptions, discoverOptions, parseOptions, soupOutputOptions } from '../options.js';

const schema = commonOptions.extend(soupOutputOptions.shape).extend(mergeOptions.shape);

export const MERGEKIT_CONFIG = 'mergekit_config.yml';

/** A linear merge that is a plain weighted mean streams through the chunked mixer, as fast as soup uniform. */
function fastLinear(
  config: MergeConfig,
  models: readonly Checkpoint[],
  options: { allowNonfinite: boolean },
  signal: AbortSignal,
  terminal: Terminal,
): TensorProducer | undefined {
  if (config.method !== linear || config.slices !== undefined) return undefined;
  const weights = plainMeanWeights(
    config.parameters,
    config.models.map((entry) => entry.parameters),
  );
  if (weights === undefined) return undefined;
  const firstFloat = models[0]!.tensors().find((tensor) => isFloatDType(tensor.dtype));
  if (weights.reduce((a, b) => a + b, 0) === 0 && firstFloat !== undefined) refuseZeroSum(firstFloat.name);
  // A helper thread, if the mixer starts one, is unref'd and ends with the command.
  return new Mixer(models, { onProgress: terminal.progress(), signal, allowNonFinite: options.allowNonfinite, threads: true }).producer(weights);
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

async function configFromYaml(file: string, options: ReturnType<typeof schema.parse>): Promise<MergeConfig> {
  const flag = givesParameters(options);
  if (flag !== undefined) throw new UsageError(`--${flag}: a YAML recipe says how to merge; set it in ${file}, or use the flag form without a recipe`);
  return parseMergeYaml(await readRecipeFile(file), file);
}

export async function runMerge(inputs: string[], rawOptions: unknown, signal: AbortSignal): Promise<void> {
  const options = parseOptions(schema, rawOptions);
  const terminal = new Terminal(options);
  const started = performance.now();
  const recipeFile = inputs.length === 1 && /\.ya?ml$/i.test(inputs[0]!) ? inputs[0]! : undefined;
  const source = recipeFile ?? 'the command line';
  const { config, opened } =
    recipeFile === undefined
      ? await configFromFlags(inputs, options, discoverOptions(options, terminal))
      : await configFromYaml(recipeFile, options).then(async (config) => ({ config, opened: await openMergeCheckpoints(config, source) }));
  try {
    const reference = opened.base ?? opened.models[0]!;
    const dtype = options.dtype ?? config.outDtype ?? config.dtype;
    const output = await prepareOutput([reference], {
      out: options.output,
      force: options.force,
      dtype,
      shardSize: options.outShardSize,
      protect: opened.all.flatMap((checkpoint) => [checkpoint.path, ...checkpoint.files]),
    });
    // The base's (else the first model's) config and tokenizer travel with a folder output, with a model card.
    const described = opened.slices !== undefined ? opened.all : opened.base === undefined ? opened.models : [opened.base, ...opened.models];
    for (const warning of await prepareModelFiles(described, output, options)) terminal.warn(warning);
    const folder = isFolderOutput(output.target);
    const renumbered = opened.slices === undefined ? undefined : await configWithLayers(output, opened.slices.layers);
    const yaml = mergekitYaml(config);
    const extraFiles = new Map<string, Uint8Array>();
    if (config.tokenizerSource !== undefined) {
      if (!folder) refuseSingleFileCompanions(options.output, `tokenizer_source: ${config.tokenizerSource}`);
      for (const [name, bytes] of await tokenizerFiles(config.tokenizerSource, opened, config, source)) extraFiles.set(name, bytes);
    }
    if (folder) extraFiles.set(MERGEKIT_CONFIG, new TextEncoder().encode(yaml));
    if (folder && renumbered !== undefined) extraFiles.set('config.json', new TextEncoder().encode(renumbered));
    const merge = mergeFromConfig(config, opened, {
      seed: options.randomSeed,
      layers: layerIndex(
        options,
        reference.tensors().map((tensor) => tensor.name),
      ),
      allowNonFinite: options.allowNonfinite,
      signal,
      onProgress: terminal.progress(),
    });
    const chosen = opened.models.map((model) => model.name);
    const recipe = {
      method: config.method.name,
      base: opened.base?.name ?? null,
      parameters: config.parameters,
      // Every global parameter as the merge used it, defaults included, so the recipe says what ran.
      resolvedParameters: { ...globalDefaults(config.method), ...config.parameters },
      modelParameters: Object.fromEntries(opened.models.map((model, k) => [model.name, config.models[k]!.parameters])),
      randomSeed: options.randomSeed,
      ...hubModelsOf(opened.all),
      ...(options.layerPattern === undefined ? {} : { layerPattern: options.layerPattern }),
      ...(dtype === undefined ? {} : { dtype }),
      mergekit: yaml,
    };
    const written = await writeSoup(
      opened.all,
      output,
      fastLinear(config, opened.models, options, signal, terminal) ?? merge.producer(),
      { strategy: 'merge', chosen, extra: recipe, command: commandArguments() },
      signal,
      extraFiles,
    );
    terminal.endProgress();
    const seconds = (performance.now() - started) / 1000;
    if (terminal.json) {
      terminal.printJson({
        strategy: 'merge',
        method: config.method.name,
        base: opened.base === undefined ? null : { name: opened.base.name, path: opened.base.path },
        ingredients: opened.models.map((model) => ({ name: model.name, path: model.path })),
        chosen,
        parameters: config.parameters,
        modelParameters: recipe.modelParameters,
        randomSeed: options.randomSeed,
        output: written.path,
        format: output.target.kind,
        files: written.files,
        bytesWritten: written.bytes,
        seconds: Number(seconds.toFixed(3)),
        warnings: terminal.warnings,
      });
      return;
    }
    const paint = terminal.paint;
    terminal.print(
      `${paint.bold(`Merge (${config.method.name})`)} of ${chosen.length} ingredient${chosen.length === 1 ? '' : 's'} -> ${paint.cyan(written.path)}`,
    );
    if (opened.base !== undefined) terminal.print(`  base         ${opened.base.name}`);
    terminal.print(`  ingredients  ${chosen.join(', ')}`);
    const shown = Object.entries(config.parameters).map(([name, value]) => `${name}=${JSON.stringify(value)}`);
    if (shown.length > 0) terminal.print(`  parameters   ${shown.join(' ')}`);
    terminal.print(`  written      ${formatBytes(written.bytes)} (${output.target.kind}) in ${formatSeconds(seconds)}`);
    if (folder) terminal.print(`  recipe       ${path.join(written.path, MERGEKIT_CONFIG)}`);
  } finally {
    await closeAll(opened.all);
  }
}
