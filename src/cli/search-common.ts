/** What the search commands (learned without gradients, evolve) share on the command line: their flags, the recorded command, the terminal hooks. */
import { z } from 'zod';
import type { Terminal } from '../report/terminal.js';
import type { SearchHooks } from '../soup/search/session.js';
import { commandArguments } from './options.js';

/** The flags both searches take, declared once; each command lists them where its schema wants them. */
export const searchFlags = {
  evaluations: z.coerce.number().int().positive().default(200),
  population: z.coerce.number().int().min(2).optional(),
  seed: z.coerce.number().int().min(0).default(0),
  objective: z.string().min(1).optional(),
  scoreCache: z.string().min(1).optional(),
  layerPattern: z.string().min(1).optional(),
};

/** Flags that change how fast a search runs or what else is written, never what it finds: left out of the recipe's command. */
const SPEED_FLAGS = new Set(['--jobs', '--score-cache', '--plot', '--config-out']);

/** The recorded command without --jobs, --score-cache, --plot and --config-out, so a resumed or parallel run writes the same bytes. */
export function searchCommandArguments(): string[] {
  const argv = commandArguments();
  const kept: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (SPEED_FLAGS.has(arg)) {
      i++;
      continue;
    }
    if ([...SPEED_FLAGS].some((flag) => arg.startsWith(`${flag}=`))) continue;
    kept.push(arg);
  }
  return kept;
}

/** Where the searches say what they do: warnings and progress on the terminal, one bar at a time. */
export function searchHooks(terminal: Terminal, signal: AbortSignal): SearchHooks {
  return { warn: (message) => terminal.warn(message), onProgress: terminal.progress(), endProgress: () => terminal.endProgress(), signal };
}
