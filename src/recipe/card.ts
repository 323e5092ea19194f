import { shellQuote } from '../shell.js';
import type { Recipe } from './recipe.js';
import { formatScore } from './scores.js';

/** Where the recorded command line had the output path: the card puts the path of the soup it describes there. */
export const OUTPUT_PLACEHOLDER = '{output}';

/**
 * A Hugging Face model card (README.md) for a soup, rendered from its recipe alone, so that the card
 * written into a folder output and `soup card` on any output say the same. Any method's recipe
 * renders: a score column appears when ingredients have scores, a weight column when they have weights.
 * `output` is the soup's path as the user gave it, shown in the command that makes it again.
 */
export function renderCard(recipe: Recipe, name: string, output: string = name): string {
  const metric = typeof recipe.metric === 'string' ? recipe.metric : undefined;
  const lines = [...frontMatter(recipe), '', `# ${name}`, '', summary(recipe), '', '## Recipe', ''];
  lines.push(`- Method: ${methodDescription(recipe)}`, ...mergeDetails(recipe));
  const direction = recipe.direction === 'maximize' ? ' (higher is better)' : recipe.direction === 'minimize' ? ' (lower is better)' : '';
  if (metric !== undefined) lines.push(`- Metric: ${metric}${direction}${typeof recipe.validation === 'string' ? ` on \`${recipe.validation}\`` : ''}`);
  if (typeof recipe.score === 'number' && metric !== undefined) lines.push(`- Score of the soup: ${formatScore(recipe.score)} ${metric}`);
  const ingredients = recipe.ingredients.filter((ingredient) => ingredient.name !== recipe.base);
  lines.push(`- Ingredients in the soup: ${recipe.chosen.length} of ${ingredients.length}`);
  if (typeof recipe.dtype === 'string') lines.push(`- Weights written as: ${recipe.dtype}`);
  if (typeof recipe.filesFrom === 'string') lines.push(`- Config and tokenizer files from: ${recipe.filesFrom}`);
  lines.push('', '### Ingredients', '', ...ingredientTable(recipe, metric));
  const steps = greedySteps(recipe, metric);
  if (steps.length > 0) lines.push('', '### Greedy steps', '', ...steps);
  if (typeof recipe.mergekit === 'string') lines.push('', '### mergekit configuration', '', '```yaml', recipe.mergekit.trimEnd(), '```');
  lines.push('', '## Reproduce', '');
  if (Array.isArray(recipe.command))
    lines.push('```sh', commandLine((recipe.command as string[]).map((arg) => arg.replaceAll(OUTPUT_PLACEHOLDER, output))), '```', '');
  lines.push(
    `Made with ${recipe.tool} ${recipe.version}. The recipe, with the SHA-256 of every ingredient file, is stored in the ` +
      "weights' metadata under `soup.recipe`; `soup card` prints this card from it.",
  );
  return `${lines.join('\n')}\n`;
}

function frontMatter(recipe: Recipe): string[] {
  const kind = recipe.strategy === 'merge' ? (mergeMethod(recipe) ?? 'merge') : `${recipe.strategy}-soup`;
  const lines = ['---', 'tags:', '- model-soup', '- merge', `- ${yamlScalar(kind)}`];
  if (typeof recipe.libraryName === 'string') lines.push(`library_name: ${yamlScalar(recipe.libraryName)}`);
  // The Hub models a merge read (from the local cache) are what the Hub lists the merge under.
  const hubModels = Array.isArray(recipe.hubModels) ? recipe.hubModels.filter((id): id is string => typeof id === 'string') : [];
  if (hubModels.length > 0) lines.push('base_model:', ...hubModels.map((id) => `- ${yamlScalar(id)}`));
  else if (typeof recipe.baseModel === 'string') lines.push(`base_model: ${yamlScalar(recipe.baseModel)}`);
  lines.push('---');
  return lines;
}

function summary(recipe: Recipe): string {
  const base = typeof recipe.baseModel === 'string' ? `, all fine-tuned from [${recipe.baseModel}](https://huggingface.co/${recipe.baseModel})` : '';
  const checkpoints = `${recipe.chosen.length} checkpoint${recipe.chosen.length === 1 ? '' : 's'}${base}`;
  const method = mergeMethod(recipe);
  if (method !== undefined && recipe.strategy === 'merge') {
    return (
      `This model merges the weights of ${checkpoints} with ${method} (as [mergekit](https://github.com/arcee-ai/mergekit) ` +
      'defines it) into one model with the same architecture and inference cost.'
    );
  }
  return (
    `This model is a model soup (Wortsman et al., ["Model soups"](https://arxiv.org/abs/2203.05482), ICML 2022): ` +
    `the weights of ${checkpoints}, ${method === undefined ? 'averaged' : `merged with ${method}`} into one model ` +
    'with the same architecture and inference cost.'
  );
}

/** The merge method of a merge or of a greedy soup over a method (`--method`), if any. */
function mergeMethod(recipe: Recipe): string | undefined {
  return typeof recipe.method === 'string' ? recipe.method : undefined;
}

/** The merge's base model and parameters, as recorded, for the recipe list. */
function mergeDetails(recipe: Recipe): string[] {
  const lines: string[] = [];
  if (typeof recipe.base === 'string') lines.push(`- Base model (its task vectors' origin, not an ingredient): ${recipe.base}`);
  const parameters = recipe.resolvedParameters ?? recipe.parameters;
  if (typeof parameters === 'object' && parameters !== null && Object.keys(parameters).length > 0) {
    lines.push(
      `- Parameters: ${Object.entries(parameters)
        .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
        .join(', ')}`,
    );
  }
  return lines;
}

function methodDescription(recipe: Recipe): string {
  switch (recipe.strategy) {
    case 'uniform':
      return 'uniform soup (the mean of every ingredient)';
    case 'greedy':
      return `greedy soup (ingredients added best first, each kept only if the score ${recipe.acceptTies === true ? 'does not get worse' : 'improves'}; ${mergeMethod(recipe) === undefined ? 'the mean of those kept' : `those kept merged with ${mergeMethod(recipe)}`})`;
    case 'learned':
      if ((recipe.hyperparameters as { optimizer?: string } | undefined)?.optimizer === 'CMA-ES') {
        return 'learned soup (mixing weights per ingredient or block of layers, searched by CMA-ES on the validation scores, no gradients; every weight is in the recipe)';
      }
      return 'learned soup (a mixing weight per tensor and ingredient, trained on the validation data; every weight is in the recipe)';
    case 'evolve':
      return `evolved merge (${mergeMethod(recipe) ?? 'merge'} with parameter ranges searched by CMA-ES on the validation scores; the recipe found is in the metadata)`;
    case 'merge':
      return `${mergeMethod(recipe) ?? 'merge'} (a mergekit method)`;
    default:
      return recipe.strategy;
  }
}

function ingredientTable(recipe: Recipe, metric: string | undefined): string[] {
  const scored = recipe.ingredients.some((ingredient) => typeof ingredient.score === 'number');
  const weighted = recipe.ingredients.some((ingredient) => typeof ingredient.weight === 'number');
  const header = ['ingredient', ...(scored ? [metric ?? 'score'] : []), ...(weighted ? ['weight'] : []), 'in the soup'];
  const rows = recipe.ingredients.map((ingredient) => [
    markdownCell(ingredient.name),
    ...(scored ? [typeof ingredient.score === 'number' ? formatScore(ingredient.score) : ''] : []),
    ...(weighted ? [typeof ingredient.weight === 'number' ? String(ingredient.weight) : ''] : []),
    ingredient.name === recipe.base ? 'base' : recipe.chosen.includes(ingredient.name) ? 'yes' : (divergedNote(recipe, ingredient.name) ?? 'no'),
  ]);
  const align = header.map((_, i) => (i === 0 || i === header.length - 1 ? '---' : '---:'));
  return [header, align, ...rows].map((row) => `| ${row.join(' | ')} |`);
}

/** "no (diverged: NaN in fc1.weight)" for an ingredient the recipe records as diverged. */
function divergedNote(recipe: Recipe, name: string): string | undefined {
  const diverged = recipe.diverged as Record<string, { tensor?: unknown; value?: unknown }> | undefined;
  const entry = typeof diverged === 'object' && diverged !== null ? diverged[name] : undefined;
  if (entry === undefined || typeof entry.tensor !== 'string') return undefined;
  return `no (diverged: ${String(entry.value)} in ${markdownCell(entry.tensor)})`;
}

interface RecipeStep {
  candidate: string;
  score: number;
  accepted: boolean;
  pruned?: boolean;
}

/** Greedy's table: the best ingredient starts the soup, then one row per candidate tried. */
function greedySteps(recipe: Recipe, metric: string | undefined): string[] {
  if (!Array.isArray(recipe.steps) || recipe.chosen.length === 0) return [];
  const first = recipe.chosen[0]!;
  const start = recipe.ingredients.find((ingredient) => ingredient.name === first)?.score;
  const rows = [['1', markdownCell(first), start === undefined ? '' : formatScore(start), 'start']];
  (recipe.steps as RecipeStep[]).forEach((step, i) => {
    const score = step.pruned === true ? `stopped early (at best ${formatScore(step.score)})` : formatScore(step.score);
    rows.push([String(i + 2), markdownCell(step.candidate), score, step.accepted ? 'kept' : 'left out']);
  });
  return [['step', 'candidate', `soup ${metric ?? 'score'}`, 'decision'], ['---:', '---', '---:', '---'], ...rows].map((row) => `| ${row.join(' | ')} |`);
}

/** The command line as a shell would take it back: arguments with spaces or quotes are single-quoted. */
export function commandLine(argv: readonly string[]): string {
  return ['soup', ...argv.map((arg) => (/^[\w@%+=:,./-]+$/.test(arg) ? arg : shellQuote(arg)))].join(' ');
}

function markdownCell(text: string): string {
  return text.replace(/\|/g, '\\|');
}

/** A YAML plain scalar when safe, else a double-quoted one (JSON strings are valid YAML). */
function yamlScalar(text: string): string {
  return /^[A-Za-z0-9][\w./-]*$/.test(text) ? text : JSON.stringify(text);
}
