/**
 * The @tensorflow/tfjs umbrella package, for scripts that train models (make-fixtures.ts). soup
 * depends on the split packages only; the umbrella also registers the gradient of every op and the
 * tensor methods, which training uses. `npm run fixtures` installs it without saving it, and
 * importing it by a computed name keeps tsc from requiring it.
 */
import type * as Core from '@tensorflow/tfjs-core';
import type * as Layers from '@tensorflow/tfjs-layers';

/** The umbrella's exports these scripts use: it re-exports tfjs-core and tfjs-layers. */
export type Tf = typeof Core & typeof Layers;

export async function importTf(): Promise<Tf> {
  const umbrella = '@tensorflow/tfjs';
  try {
    return (await import(umbrella)) as Tf;
  } catch (error) {
    throw new Error(`${umbrella} is not installed (npm run fixtures installs it): ${(error as Error).message}`);
  }
}
