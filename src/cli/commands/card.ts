import { closeAll, discoverIngredients, openAll } from '../../checkpoint/discover.js';
import { InputError, UsageError } from '../../errors.js';
import { renderCard } from '../../recipe/card.js';
import { Terminal } from '../../report/terminal.js';
import { RECIPE_KEY, readRecipe } from '../../recipe/recipe.js';
import { commonOptions, parseOptions } from '../options.js';

/** Prints the model card of a soup from the recipe in its metadata: the README.md a folder output gets. */
export async function runCard(input: string, rawOptions: unknown): Promise<void> {
  const options = parseOptions(commonOptions, rawOptions);
  const terminal = new Terminal(options);
  const ingredients = await discoverIngredients([input]);
  if (ingredients.length !== 1) throw new UsageError(`${input} holds ${ingredients.length} checkpoints; soup card describes one soup`);
  const [soup] = await openAll(ingredients);
  try {
    const recipe = readRecipe(soup!);
    if (recipe === undefined) {
      throw new InputError(soup!.path, `has no soup recipe in its metadata (key ${RECIPE_KEY}), so it was not made by soup`);
    }
    const card = renderCard(recipe, soup!.name, input);
    if (terminal.json) terminal.printJson({ checkpoint: soup!.path, card, recipe });
    else process.stdout.write(card);
  } finally {
    await closeAll([soup!]);
  }
}
