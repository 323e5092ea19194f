import { closeAll } from '../../checkpoint/discover.js';
import { InputError } from '../../errors.js';
import { renderCard } from '../../recipe/card.js';
import { RECIPE_KEY, readRecipe } from '../../recipe/recipe.js';
import { Terminal } from '../../report/terminal.js';
import { openSingle } from '../../soup/single.js';
import { commonOptions, parseOptions } from '../options.js';

/** Prints the model card of a soup from the recipe in its metadata: the README.md a folder output gets. */
export async function runCard(input: string, rawOptions: unknown): Promise<void> {
  const options = parseOptions(commonOptions, rawOptions);
  const terminal = new Terminal(options);
  const soup = await openSingle(input, undefined, 'soup card describes one soup');
  try {
    const recipe = readRecipe(soup);
    if (recipe === undefined) throw new InputError(soup.path, `has no soup recipe in its metadata (key ${RECIPE_KEY}), so it was not made by soup`);
    const card = renderCard(recipe, soup.name, input);
    if (terminal.json) terminal.printJson({ checkpoint: soup.path, card, recipe });
    else process.stdout.write(card);
  } finally {
    await closeAll([soup]);
  }
}
