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
import { chooseOutput, entryFileOf, fileSuffixOf } from '../checkpoint/formats.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { fixedMetadata, planOutput, writeCheckpoint } from '../checkpoint/writer.js';
import { candidateProducer, type CandidateWeights } from '../weights/candidate.js';

export interface WrittenCandidate {
  /** What {ckpt} stands for: the model folder, or the weights file when ingredients are loose files. */
  ckpt: string;
  /** What {ckpt_file} stands for: the weights file alone (a sharded folder's index, a TF.js model.json). */
  ckptFile: string;
  /** Removes everything written for this candidate. */
  remove(): Promise<void>;
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
      await writeCheckpoint(
        target,
        planOutput(this.reference),
        fixedMetadata({ ...this.reference.metadata }),
        candidateProducer(candidate),
        companions ?? new Map(),
      );
    } catch (error) {
      await remove();
      throw error;
    }
    return { ckpt: target.path, ckptFile: entryFileOf(target), remove };
  }
}
