/** `soup compare --save-dir`: the uniform and greedy soups it scored, written as uniform-soup and greedy-soup. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileSuffixOf } from '../../checkpoint/formats.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { UsageError, describeFsError } from '../../errors.js';
import { candidateProducer } from '../../weights/candidate.js';
import type { Divergence } from '../diverged.js';
import { type PreparedOutput, prepareModelFiles, prepareOutput, writeOutcome } from '../write.js';
import type { CompareResult } from './compare.js';

export type SaveTargets = Record<'uniform' | 'greedy', PreparedOutput>;

/**
 * Both outputs, in the ingredients' format, checked and claimed before any scoring; with the warnings
 * about their model files, each once (the two outputs get the same files).
 */
export async function prepareSaves(
  dir: string,
  force: boolean,
  checkpoints: readonly Checkpoint[],
  protect: readonly (string | undefined)[],
): Promise<{ targets: SaveTargets; warnings: Set<string> }> {
  const suffix = fileSuffixOf(checkpoints[0]!);
  await mkdir(dir, { recursive: true }).catch((error: unknown) => {
    throw new UsageError(`--save-dir ${dir}: cannot create it: ${describeFsError(error)}`);
  });
  const targets = {
    uniform: await prepareOutput(checkpoints, { out: path.join(dir, `uniform-soup${suffix}`), force, protect }),
    greedy: await prepareOutput(checkpoints, { out: path.join(dir, `greedy-soup${suffix}`), force, protect }),
  };
  const warnings = new Set<string>();
  for (const output of Object.values(targets)) for (const warning of await prepareModelFiles(checkpoints, output)) warnings.add(warning);
  return { targets, warnings };
}

/** Writes both soups, their recipes holding the comparison's scores; returns where each went, by kind. */
export async function writeSaves(
  checkpoints: readonly Checkpoint[],
  targets: SaveTargets,
  result: CompareResult,
  options: { metric: string; direction: string; diverged: ReadonlyMap<Checkpoint, Divergence>; command: readonly string[]; signal?: AbortSignal },
): Promise<Record<string, string>> {
  const { diverged } = options;
  const names = checkpoints.filter((c) => !diverged.has(c)).map((c) => c.name);
  const soups = [
    { kind: 'uniform', output: targets.uniform, weights: result.uniform.weights(), chosen: names },
    { kind: 'greedy', output: targets.greedy, weights: result.greedy.soup.weights(), chosen: result.greedy.soup.chosen.map((c) => c.name) },
  ];
  const saved: Record<string, string> = {};
  for (const soup of soups) {
    const record = {
      strategy: soup.kind,
      chosen: soup.chosen,
      scores: result.greedy.scores,
      extra: {
        metric: options.metric,
        direction: options.direction,
        scores: result.rows.find((row) => row.kind === soup.kind)?.scores,
        ...(diverged.size === 0 ? {} : { diverged: Object.fromEntries([...diverged].map(([checkpoint, divergence]) => [checkpoint.name, divergence])) }),
      },
      command: options.command,
    };
    const written = await writeOutcome(checkpoints, soup.output, { producer: candidateProducer(soup.weights), record, document: undefined }, options.signal);
    saved[soup.kind] = written.path;
  }
  return saved;
}
