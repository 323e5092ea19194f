import type { CandidateWeights } from '../weights/candidate.js';
import { CommandEvaluator, EvalCommandError } from './command.js';
import type { Evaluation, EvaluationContext } from './evaluator.js';

/** What a candidate is, for an error message: an ingredient's name, or the soup it is a mean of. */
export function describeCandidate(candidate: CandidateWeights): string {
  const parts = candidate.parts;
  if (parts === undefined || parts.length === 0) return 'a candidate';
  if (parts.length === 1) return parts[0]!.checkpoint.name;
  if (parts.every((part) => part.weight === parts[0]!.weight)) return `the soup of ${parts.map((part) => part.checkpoint.name).join(' + ')}`;
  return parts.map((part) => `${Number(part.weight.toFixed(4))} ${part.checkpoint.name}`).join(' + ');
}

/**
 * The user's command, with every failure naming the candidate it was scoring: in a sweep of dozens of
 * runs, "its last line is not JSON" is only actionable with the run it happened on.
 */
export class NamingCommandEvaluator extends CommandEvaluator {
  override async evaluate(candidate: CandidateWeights, signal?: AbortSignal, bound?: unknown, context?: EvaluationContext): Promise<Evaluation> {
    try {
      // The context carries the journal key the Slurm executor logs its jobs under: pass it on whole.
      return await super.evaluate(candidate, signal, bound, context);
    } catch (error) {
      if (error instanceof EvalCommandError) throw new EvalCommandError(`scoring ${describeCandidate(candidate)}: ${error.message}`);
      throw error;
    }
  }
}
