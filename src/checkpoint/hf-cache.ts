/**
 * Hugging Face model references (`org/name`, `org/name@revision`) read from the local Hub cache, as
 * huggingface_hub lays it out: `<hub>/models--org--name/refs/<revision>` holds a commit hash, and
 * `<hub>/models--org--name/snapshots/<commit>/` the model folder. soup never downloads: a model that
 * is not in the cache is an error that prints the command that fetches it.
 */
import { readFile, stat } from 'node:fs/promises';
import { homedir } from 'node:os';
import path from 'node:path';
import { InputError } from '../errors.js';

/** `org/name` or `name`, then an optional `@revision` (a branch, tag or commit). */
const REFERENCE = /^([A-Za-z0-9][\w.-]*\/)?([A-Za-z0-9][\w.-]*)(?:@([\w./-]+))?$/;
const COMMIT = /^[0-9a-f]{40}$/;

export interface HubReference {
  /** `org/name` as the Hub spells it. */
  id: string;
  revision: string;
}

/** The Hub cache folder, as huggingface_hub finds it: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. */
export function hubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HUB_CACHE) return env.HF_HUB_CACHE;
  if (env.HUGGINGFACE_HUB_CACHE) return env.HUGGINGFACE_HUB_CACHE;
  const home = env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'huggingface');
  return path.join(home, 'hub');
}

/** The reference `text` names, or undefined when it cannot be one (paths with ./, .., a suffix soup reads). */
export function parseHubReference(text: string): HubReference | undefined {
  const match = REFERENCE.exec(text);
  if (match === null || match[1] === undefined) return undefined;
  if (text.includes('..') || /\.(safetensors|onnx|pt|pth|bin|ckpt|json|ya?ml)$/i.test(match[2]!)) return undefined;
  return { id: `${match[1]}${match[2]}`, revision: match[3] ?? 'main' };
}

async function exists(file: string): Promise<boolean> {
  return (await stat(file).catch(() => undefined)) !== undefined;
}

function downloadCommand(reference: HubReference): string {
  return `huggingface-cli download ${reference.id}${reference.revision === 'main' ? '' : ` --revision ${reference.revision}`}`;
}

/** The snapshot folder of `reference` in the cache, or an error saying how to download it. */
export async function resolveHubReference(reference: HubReference, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const hub = hubCacheDir(env);
  const repo = path.join(hub, `models--${reference.id.replace('/', '--')}`);
  const typed = reference.revision === 'main' ? reference.id : `${reference.id}@${reference.revision}`;
  const missing = (what: string): InputError =>
    new InputError(typed, `${what} in the Hugging Face cache (${hub}); soup does not download`, { hint: `fetch it first: ${downloadCommand(reference)}` });
  if (!(await exists(repo))) throw missing('not a model path, and not');
  const ref = path.join(repo, 'refs', reference.revision);
  let commit: string | undefined;
  if (!reference.revision.includes('..') && (await exists(ref))) commit = (await readFile(ref, 'utf8')).trim();
  else if (COMMIT.test(reference.revision)) commit = reference.revision;
  if (commit === undefined || !COMMIT.test(commit)) throw missing(`revision ${reference.revision} is not`);
  const snapshot = path.join(repo, 'snapshots', commit);
  if (!(await exists(snapshot))) throw missing(`commit ${commit} (${reference.revision}) is not`);
  return snapshot;
}

/** The Hub id a snapshot folder (or a file in it) came from, for model cards; undefined for other paths. */
export function hubIdOf(file: string): string | undefined {
  const match = /(?:^|[/\\])models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\][0-9a-f]{40}(?:[/\\]|$)/.exec(file);
  return match === null ? undefined : `${match[1]}/${match[2]}`;
}
