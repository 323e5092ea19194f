/** What `soup compare` checks before it opens anything: the data sets' names, the --baseline, the --merge recipes. */
import path from 'node:path';
import { UsageError } from '../../errors.js';
import { type CompareDocument, readCompareDocument } from './compare-document.js';
import { type MergeRecipe, readMergeRecipe } from './compare-merge.js';

/** The column name of the validation set, stable across runs so that baselines line up. */
export const VALIDATION = 'val';

export interface CompareTest {
  /** The column's name: NAME of --test NAME=DATA, else the file or folder name. */
  name: string;
  data: string;
}

export interface ComparePlan {
  tests: CompareTest[];
  /** --baseline: the earlier document and the file it came from (messages name it). */
  baseline?: { file: string; document: CompareDocument } | undefined;
  merges: MergeRecipe[];
}

/** `--test NAME=DATA`, or `--test DATA` named after the file or folder. */
export function parseTests(specs: readonly string[]): CompareTest[] {
  const tests = specs.map((spec) => {
    const match = /^([A-Za-z0-9_.-]+)=(.+)$/.exec(spec);
    if (match !== null) return { name: match[1]!, data: match[2]! };
    return { name: path.basename(spec).replace(/\.[^.]+$/, ''), data: spec };
  });
  const names = [VALIDATION, ...tests.map((t) => t.name)];
  const duplicate = names.find((name, i) => names.indexOf(name) !== i);
  if (duplicate !== undefined) throw new UsageError(`two data sets are named "${duplicate}"`, { hint: 'name them with --test NAME=DATA' });
  return tests;
}

/**
 * Reads and checks what the flags name, so that a typo in a recipe or a baseline for another metric
 * fails before the ingredients are opened, let alone scored.
 */
export async function planComparison(options: {
  test: readonly string[];
  metric: string;
  baseline?: string | undefined;
  maxDrop?: number | undefined;
  merge: readonly string[];
}): Promise<ComparePlan> {
  const tests = parseTests(options.test);
  if (options.maxDrop !== undefined && options.baseline === undefined) throw new UsageError('--max-drop needs --baseline previous.json');
  const file = options.baseline;
  const baseline = file === undefined ? undefined : { file, document: await readCompareDocument(file) };
  if (baseline !== undefined && baseline.document.metric !== options.metric) {
    throw new UsageError(`the baseline ${baseline.file} compares ${baseline.document.metric}, this run ${options.metric}`, {
      hint: `pass --metric ${baseline.document.metric}`,
    });
  }
  const merges = await Promise.all(options.merge.map(async (recipe) => ({ file: recipe, config: await readMergeRecipe(recipe) })));
  return { tests, baseline, merges };
}
