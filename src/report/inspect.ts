import { RECIPE_KEY } from '../recipe/recipe.js';
import type { InspectDocument } from '../soup/strategies/inspect.js';
import { formatBytes, formatCount, formatShape, table } from './format.js';
import type { Terminal } from './terminal.js';

/** What `soup inspect` found: the --json document, or each checkpoint's tensors and whether they soup together. */
export function renderInspect(terminal: Terminal, doc: InspectDocument): void {
  if (terminal.json) {
    terminal.printJson(doc);
    return;
  }
  const paint = terminal.paint;
  for (const checkpoint of doc.checkpoints) {
    terminal.print(`${paint.bold(checkpoint.name)}  ${checkpoint.path}`);
    terminal.print(
      `  ${checkpoint.format}, ${checkpoint.tensors.length} tensors, ${formatCount(checkpoint.parameters)} parameters, ${formatBytes(checkpoint.bytes)}`,
    );
    for (const note of checkpoint.notes) terminal.print(`  ${note}`);
    const rows = checkpoint.tensors.map((tensor) => [
      tensor.name,
      tensor.dtype,
      formatShape(tensor.shape),
      tensor.storage ?? (tensor.tiedTo === undefined ? '' : `tied to ${tensor.tiedTo}`),
    ]);
    for (const line of table([['tensor', 'dtype', 'shape', ''].map((h) => paint.dim(h)), ...rows])) terminal.print(`  ${line.trimEnd()}`);
    const metadata = Object.entries(checkpoint.metadata).filter(([key]) => key !== RECIPE_KEY);
    if (metadata.length > 0) terminal.print(`  metadata: ${metadata.map(([key, value]) => `${key}=${value}`).join(', ')}`);
    const recipe = checkpoint.recipe;
    if (recipe !== null) terminal.print(`  recipe: ${recipe.strategy} soup of ${recipe.chosen.join(', ')} (${recipe.tool} ${recipe.version})`);
    terminal.print();
  }
  if (doc.checkpoints.length > 1) {
    if (doc.compatible) {
      terminal.print(paint.green(`These ${doc.checkpoints.length} checkpoints can be souped together.`));
    } else {
      terminal.print(paint.red(`These ${doc.checkpoints.length} checkpoints cannot be souped together:`));
      for (const problem of doc.problems) terminal.print(`  - ${problem}`);
    }
  }
}
