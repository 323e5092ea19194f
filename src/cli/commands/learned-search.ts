/**
 * `soup learned` for models soup can only score (ONNX Runtime, --eval-cmd): CMA-ES over the mixing
 * weights' logits instead of gradient descent. Called by learned.ts once it knows the gradient path
 * cannot run.
 */
import type { Checkpoint } from '../../checkpoint/types.js';
import { renderLearnedSearch } from '../../report/learned-search.js';
import type { Terminal } from '../../report/terminal.js';
import { checkLearnedSearch, learnedSearchSoup } from '../../soup/strategies/learned-search-soup.js';
import { writeOutcome } from '../../soup/write.js';
import type { LearnedOptions } from '../learned-options.js';
import { prepareSoupOutput } from '../output.js';
import { searchCommandArguments, searchHooks } from '../search-common.js';

export async function runLearnedSearch(
  inputs: string[],
  options: LearnedOptions,
  checkpoints: Checkpoint[],
  terminal: Terminal,
  signal: AbortSignal,
  started: number,
): Promise<void> {
  const checked = checkLearnedSearch(checkpoints, options, { maxMemory: options.maxMemory, inputs });
  const output = await prepareSoupOutput(checkpoints, options, terminal, { protect: [options.model, options.val] });
  const made = await learnedSearchSoup(checkpoints, {
    evaluation: options,
    settings: options,
    checked,
    dtype: options.dtype,
    command: searchCommandArguments(),
    ...searchHooks(terminal, signal),
  });
  const written = await writeOutcome(checkpoints, output, made, signal);
  terminal.endProgress();
  const seconds = (performance.now() - started) / 1000;
  renderLearnedSearch(terminal, made.document, { path: written.path, seconds }, { scoredWith: made.scoredWith, format: output.target.kind, val: options.val });
}
