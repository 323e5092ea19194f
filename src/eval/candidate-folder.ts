/**
 * Where an --eval-cmd candidate is written: laid out like the ingredients, so the command loads it as
 * it loads them. An ingredient that is a model folder (model.safetensors or pytorch_model.bin with
 * config.json, tokenizer, ...) gives a folder with the weights in the same format and the same
 * companion files, so `from_pretrained({ckpt})` works; a loose file gives one file of its format.
 */
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { collectCompanions, modelFolderOf } from '../checkpoint/companions.js';
import { removeAtExit } from '../checkpoint/leftovers.js';
import { TORCH_FOLDER_FILE, TORCH_SHARD_INDEX } from '../checkpoint/pytorch/writer.js';
import { SHARD_INDEX } from '../checkpoint/sharded.js';
import { MODEL_JSON } from '../checkpoint/tfjs.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { chooseOutput, fileSuffixOf, fixedMetadata, planOutput, writeCheckpoint, type OutputTarget } from '../checkpoint/writer.js';
import { candidateProducer, type CandidateWeights } from '../weights/candidate.js';

export interface WrittenCandidate {
  /** What {ckpt} stands for: the model folder, or the weights file when ingredients are loose files. */
  ckpt: string;
  /** What {ckpt_file} stands for: the weights file alone (a sharded folder's index, a TF.js model.json). */
  ckptFile: string;
  /** Removes everything written for this candidate. */
  remove(): Promise<void>;
}

/** The file of a folder output that names the weights. */
function weightsFileOf(target: OutputTarget): string {
  switch (target.kind) {
    case 'safetensors-folder':
      return path.join(target.path, 'model.safetensors');
    case 'pytorch-folder':
      return path.join(target.path, TORCH_FOLDER_FILE);
    case 'safetensors-sharded':
      return path.join(target.path, SHARD_INDEX);
    case 'pytorch-sharded':
      return path.join(target.path, TORCH_SHARD_INDEX);
    case 'tfjs':
      return path.join(target.path, MODEL_JSON);
    default:
      return target.path;
  }
}

/**
 * Writes candidates like `reference` into `workDir`. The reference's companion files (config,
 * tokenizer, ...) are found once, not per candidate.
 */
export class CandidateWriter {
  private companions: Promise<ReadonlyMap<string, string> | undefined> | undefined;

  constructor(
    private readonly reference: Checkpoint,
    private readonly workDir: string,
  ) {}

  /** The model folder's files a loader reads besides the weights; undefined where the reference is a loose file. */
  private companionFiles(): Promise<ReadonlyMap<string, string> | undefined> {
    this.companions ??= (async () => {
      // An ONNX model is loaded from its file (its folder, if any, is not what onnxruntime reads).
      if (this.reference.format === 'onnx' || (await modelFolderOf(this.reference)) === undefined) return undefined;
      return (await collectCompanions([this.reference])).files;
    })();
    return this.companions;
  }

  async write(candidate: CandidateWeights): Promise<WrittenCandidate> {
    const companions = await this.companionFiles();
    const base = path.join(this.workDir, `soup-candidate-${process.pid}-${randomBytes(4).toString('hex')}`);
    // A folder like the ingredient's (model.safetensors / pytorch_model.bin / shards / model.json), else one file of its format.
    const target = chooseOutput(companions === undefined ? `${base}${fileSuffixOf(this.reference)}` : base, this.reference);
    // A soup killed mid-evaluation leaves nothing behind: the file is removed at exit too.
    const forget = removeAtExit(target.path);
    const remove = async (): Promise<void> => {
      await rm(target.path, { recursive: true, force: true });
      forget();
    };
    try {
      await writeCheckpoint(target, planOutput(this.reference), fixedMetadata({ ...this.reference.metadata }), candidateProducer(candidate), companions ?? new Map());
    } catch (error) {
      await remove();
      throw error;
    }
    return { ckpt: target.path, ckptFile: weightsFileOf(target), remove };
  }
}
