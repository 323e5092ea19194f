import type { DType } from './dtype.js';

/** The built-in formats, and any a plugin adds to checkpoint/formats.ts (named there). */
export type CheckpointFormat = 'safetensors' | 'safetensors-sharded' | 'tfjs' | 'pytorch' | 'pytorch-sharded' | 'onnx' | (string & {});

export interface TensorInfo {
  name: string;
  shape: number[];
  /** The dtype the values have once read (quantized TF.js weights read as F32). */
  dtype: DType;
  /** Bytes the tensor occupies in its file(s). */
  storedBytes: number;
  /** How the tensor is stored when it differs from `dtype`, e.g. "uint8 quantized". */
  storage?: string;
  /**
   * An earlier tensor this one shares its storage with (same storage, offset, shape and strides), as
   * PyTorch's tied weights do; a writer that can store aliases (torch.save) stores the data once.
   */
  tiedTo?: string;
}

/**
 * One ingredient, opened lazily: the header is parsed and validated on open, weights are read one
 * tensor at a time so that no caller ever holds a whole checkpoint in memory.
 */
export interface Checkpoint {
  /** File name without extension, or folder name. */
  readonly name: string;
  /** What the user pointed at: a file, or a checkpoint folder. */
  readonly path: string;
  readonly format: CheckpointFormat;
  /** Key/value metadata stored with the weights (safetensors __metadata__, TF.js userDefinedMetadata). */
  readonly metadata: Readonly<Record<string, string>>;
  /** Every file the checkpoint consists of, for hashing and size reports. */
  readonly files: readonly string[];
  /** Tensors in storage order. */
  tensors(): readonly TensorInfo[];
  /** Values of a float tensor (F64 as Float64Array, everything else as Float32Array). */
  readFloats(name: string): Promise<Float32Array | Float64Array>;
  /**
   * Elements [start, start + count) of a float tensor, for streaming: decoded into `scratch` when given
   * (the result may be a view of it), so a caller reading chunk after chunk allocates nothing.
   */
  readFloatRange(name: string, start: number, count: number, scratch?: ChunkScratch): Promise<Float32Array | Float64Array>;
  /** Values exactly as `dtype` stores them, little-endian: for tensors that are copied, not averaged. */
  readBytes(name: string): Promise<Uint8Array>;
  /** How the weights were found, when the user should know: a wrapper entry used, entries ignored. */
  readonly notes?: readonly string[];
  /**
   * Elements [start, start + count) of a tensor exactly as `dtype` stores them, into the front of
   * `into`: lets the SIMD kernel widen half-precision values itself. Absent where stored bytes are
   * not the values (quantized TF.js weights); readFloatRange serves those.
   */
  readStoredRange?(name: string, start: number, count: number, into: Uint8Array): Promise<Uint8Array>;
  /** Which shard file (by name) holds each tensor, for sharded checkpoints, so a writer can keep the layout. */
  shardLayout?(): Map<string, string>;
  close(): Promise<void>;
}

/**
 * Reusable buffers for readFloatRange: bytes for count elements of the widest stored dtype, and
 * floats for count elements where half-precision values are widened (absent if none are).
 */
export interface ChunkScratch {
  bytes: Uint8Array;
  floats?: Float32Array;
}

/** What a writer needs to know about each output tensor before any data arrives. */
export interface OutputTensor {
  name: string;
  shape: number[];
  dtype: DType;
  /**
   * An earlier output tensor whose storage this one shares (set only for targets that store aliases,
   * and only where every ingredient ties the two): the writer stores the data once and never asks the
   * producer for this tensor.
   */
  tiedTo?: string;
}

/**
 * Metadata that may be known only once the data is written (hashes computed meanwhile): the header is
 * first written from `placeholder`, then rewritten in place from `resolve()`, which must encode to the
 * same length (hex hashes in place of as many zeros).
 */
export interface MetadataSource {
  placeholder: Record<string, string>;
  resolve(): Promise<Record<string, string>>;
}
