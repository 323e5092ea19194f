/**
 * Ingredient names: a file's name without extension or a folder's name, lengthened by parent folders
 * only as far as needed to tell it from the others (`ft-lr1e-3-s2/checkpoint-282`), so that a sweep
 * whose runs all saved `checkpoint-282` can be souped and reported as it lies on disk.
 */
import path from 'node:path';

export interface Nameable {
  /** The short name: file name without extension, or folder name. */
  name: string;
  /** The file or folder the name stands for; its parent folders lengthen the name. */
  source: string;
  /** Parent folders the name starts with, unique or not (a Trainer's checkpoint-N means little without its run). */
  minDepth?: number;
}

/**
 * The shortest unique path suffix of each item, in the items' order. Items whose paths are equal but
 * for the extension (`x.safetensors` and `x.pt` in one folder) keep their short name; the caller reports them.
 */
export function uniqueNames(items: readonly Nameable[]): string[] {
  const parents = items.map((item) =>
    path
      .resolve(item.source)
      .split(path.sep)
      .slice(0, -1)
      .filter((part) => part !== ''),
  );
  const full = items.map((item, i) => [...parents[i]!, item.name].join('/'));
  // Items no folder tells apart keep their short name, for the caller's error to name.
  const hopeless = full.map((key) => full.filter((other) => other === key).length > 1);
  const depth = items.map((item, i) => (hopeless[i] ? 0 : Math.min(item.minDepth ?? 0, parents[i]!.length)));
  const nameAt = (i: number): string => [...parents[i]!.slice(parents[i]!.length - depth[i]!), items[i]!.name].join('/');
  for (;;) {
    const groups = new Map<string, number[]>();
    for (let i = 0; i < items.length; i++) groups.set(nameAt(i), [...(groups.get(nameAt(i)) ?? []), i]);
    let lengthened = false;
    for (const members of groups.values()) {
      if (members.length < 2) continue;
      for (const i of members) {
        if (!hopeless[i] && depth[i]! < parents[i]!.length) {
          depth[i]!++;
          lengthened = true;
        }
      }
    }
    if (!lengthened) return items.map((_, i) => nameAt(i));
  }
}
