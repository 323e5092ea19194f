import { closeAll, discoverIngredients, openAll } from '../../checkpoint/discover.js';
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { IncompatibleError } from '../../errors.js';
import { countBytes, countParameters } from '../../soup/ingredients.js';
import { RECIPE_KEY, readRecipe } from '../../recipe/recipe.js';
import { formatBytes, formatCount, formatShape, table } from '../../report/format.js';
import { Terminal } from '../../report/terminal.js';
import { commonOptions, discoverOptions, parseOptions } from '../options.js';

function describe(checkpoint: Checkpoint): Record<string, unknown> {
  return {
    name: checkpoint.name,
    path: checkpoint.path,
    format: checkpoint.format,
    tensors: checkpoint
      .tensors()
      .map(({ name, dtype, shape, storage, tiedTo }) => ({ name, dtype, shape, ...(storage ? { storage } : {}), ...(tiedTo ? { tiedTo } : {}) })),
    parameters: countParameters(checkpoint),
    bytes: countBytes(checkpoint),
    metadata: checkpoint.metadata,
    notes: checkpoint.notes ?? [],
    recipe: readRecipe(checkpoint) ?? null,
  };
}

export async function runInspect(inputs: string[], rawOptions: unknown): Promise<void> {
  const options = parseOptions(commonOptions, rawOptions);
  const terminal = new Terminal(options);
  const checkpoints = await openAll(await discoverIngredients(inputs, discoverOptions(options, terminal)));
  try {
    const problems = findIncompatibilities(checkpoints);
    if (terminal.json) {
      terminal.printJson({ checkpoints: checkpoints.map(describe), compatible: problems.length === 0, problems });
    } else {
      printHuman(terminal, checkpoints, problems);
    }
    if (problems.length > 0) throw new IncompatibleError(problems);
  } finally {
    await closeAll(checkpoints);
  }
}

function printHuman(terminal: Terminal, checkpoints: readonly Checkpoint[], problems: readonly string[]): void {
  const paint = terminal.paint;
  for (const checkpoint of checkpoints) {
    terminal.print(`${paint.bold(checkpoint.name)}  ${checkpoint.path}`);
    terminal.print(
      `  ${checkpoint.format}, ${checkpoint.tensors().length} tensors, ${formatCount(countParameters(checkpoint))} parameters, ${formatBytes(countBytes(checkpoint))}`,
    );
    for (const note of checkpoint.notes ?? []) terminal.print(`  ${note}`);
    const rows = checkpoint
      .tensors()
      .map((tensor) => [
        tensor.name,
        tensor.dtype,
        formatShape(tensor.shape),
        tensor.storage ?? (tensor.tiedTo === undefined ? '' : `tied to ${tensor.tiedTo}`),
      ]);
    for (const line of table([['tensor', 'dtype', 'shape', ''].map((h) => paint.dim(h)), ...rows])) terminal.print(`  ${line.trimEnd()}`);
    const metadata = Object.entries(checkpoint.metadata).filter(([key]) => key !== RECIPE_KEY);
    if (metadata.length > 0) terminal.print(`  metadata: ${metadata.map(([key, value]) => `${key}=${value}`).join(', ')}`);
    const recipe = readRecipe(checkpoint);
    if (recipe !== undefined) {
      terminal.print(`  recipe: ${recipe.strategy} soup of ${recipe.chosen.join(', ')} (${recipe.tool} ${recipe.version})`);
    }
    terminal.print();
  }
  if (checkpoints.length > 1) {
    if (problems.length === 0) {
      terminal.print(paint.green(`These ${checkpoints.length} checkpoints can be souped together.`));
    } else {
      terminal.print(paint.red(`These ${checkpoints.length} checkpoints cannot be souped together:`));
      for (const problem of problems) terminal.print(`  - ${problem}`);
    }
  }
}
