/** soup inspect: what checkpoints hold, and whether they can be souped together. */
import { findIncompatibilities } from '../../checkpoint/compatible.js';
import type { DType } from '../../checkpoint/dtype.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { readRecipe, type Recipe } from '../../recipe/recipe.js';
import { countBytes, countParameters } from '../ingredients.js';

export interface CheckpointDescription {
  name: string;
  path: string;
  format: string;
  tensors: { name: string; dtype: DType; shape: number[]; storage?: string; tiedTo?: string }[];
  parameters: number;
  bytes: number;
  metadata: Readonly<Record<string, string>>;
  notes: readonly string[];
  /** The soup recipe in its metadata, if soup made it. */
  recipe: Recipe | null;
}

/** What `soup inspect` reports (--json). */
export interface InspectDocument {
  checkpoints: CheckpointDescription[];
  compatible: boolean;
  /** Why the checkpoints cannot be souped together, one line each. */
  problems: string[];
}

export function inspectCheckpoints(checkpoints: readonly Checkpoint[]): InspectDocument {
  const problems = findIncompatibilities(checkpoints);
  return { checkpoints: checkpoints.map(describe), compatible: problems.length === 0, problems };
}

function describe(checkpoint: Checkpoint): CheckpointDescription {
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
