import { availableParallelism } from 'node:os';
import { decodeFloats, dtypeSize, isFloatDType, numel, type FloatDType } from '../../checkpoint/dtype.js';
import type { TensorProducer } from '../../checkpoint/safetensors.js';
import type { Checkpoint, ChunkScratch, OutputTensor, TensorInfo } from '../../checkpoint/types.js';
import { InputError, throwIfAborted } from '../../errors.js';
import { ignoreProgress, type ProgressListener } from '../../progress.js';
import { BLOCK, ChunkOutput, combineRange, indexOfNonFinite, sumBlock } from './average.js';
import { ENTRY_BYTES } from './source.js';
import { KERNEL_STEP, WasmKernel, type KernelArray, type KernelDType } from './wasm.js';

export interface MixOptions {
  onProgress?: ProgressListener;
  signal?: AbortSignal;
  /** Keep NaN and infinities instead of refusing the ingredient that holds them. */
  allowNonFinite?: boolean;
  /** Elements per chunk; by default chosen so all read buffers together stay within READ_BUDGET_BYTES. */
  chunkElements?: number;
  /** Use the WebAssembly SIMD kernel where it applies (default); false runs the JS kernel only. */
  simd?: boolean;
  /**
   * Let a helper thread share the kernel's work (see WasmKernel) on a machine with two cores or more,
   * for soups of at least THREADS_MIN_ELEMENTS float elements per ingredient, or of any size with
   * 'always'. Chunks then live in shared memory. Call close() when done.
   */
  threads?: boolean | 'always';
}

/** Below this many float elements per ingredient (64 MB of float32), the helper thread is not worth starting. */
const THREADS_MIN_ELEMENTS = 1 << 24;

/**
 * Read buffers of all ingredients together, sized for float64 inputs (float32 ones fill half): the
 * memory a soup needs beyond one chunk of output.
 */
const READ_BUDGET_BYTES = 12 * 1024 * 1024;

/**
 * Streams a weighted mean of checkpoints tensor by tensor and chunk by chunk. For each chunk it reads
 * that range from every ingredient into preallocated buffers, then adds all inputs block by block
 * (one pass over the inputs, the running sums in cache) and writes the mean in the output dtype.
 * Reads are synchronous (see RangeReader.readInto): on these page-cache speeds, one thread doing
 * them beat handing them to libuv's threads. Writes of fresh pages cost as much as the arithmetic, so
 * the output alternates between two buffers and the writer writes one while the next is computed.
 * Memory holds one chunk per ingredient and two of output, whatever the size of the tensors; with a
 * helper thread, two per ingredient and three of output (the pipeline of streamInKernel).
 */
export class Mixer {
  private bytesRead = 0;
  /** Bytes the current pass reads, for progress events; set by producer(). */
  private passBytes = 0;
  private readonly onProgress: ProgressListener;
  private readonly warnedCopies = new Set<string>();
  private readonly infos: Map<string, TensorInfo>[];
  /** Per ingredient: bytes per element of its widest stored float dtype, and whether it stores halves to widen. */
  private readonly readLayouts: { widest: number; widens: boolean }[];
  private readonly chunk: number;
  /** Read buffers, one per ingredient; allocated on first use. */
  private scratch: ChunkScratch[] | undefined;
  /** Read buffers for the chunk after the current one, when a helper thread computes meanwhile. */
  private ahead: { bytes: Uint8Array }[] | undefined;
  private readonly sums = new Float64Array(BLOCK);
  /** Output chunks in turn, least recently used first, so the writer can write one while the next is computed. */
  private outBuffers: Uint8Array[] | undefined;
  /** The WebAssembly SIMD kernel, whose memory holds all the buffers above; undefined where unavailable. */
  private kernel: WasmKernel | undefined | null;

  constructor(
    private readonly checkpoints: readonly Checkpoint[],
    private readonly options: MixOptions = {},
  ) {
    this.onProgress = options.onProgress ?? ignoreProgress;
    this.infos = checkpoints.map((checkpoint) => new Map(checkpoint.tensors().map((tensor) => [tensor.name, tensor])));
    this.readLayouts = checkpoints.map((checkpoint) => {
      const sizes = checkpoint
        .tensors()
        .filter((tensor) => isFloatDType(tensor.dtype))
        .map((tensor) => dtypeSize(tensor.dtype));
      return { widest: Math.max(0, ...sizes), widens: sizes.includes(2) };
    });
    this.chunk = options.chunkElements ?? Math.max(BLOCK, Math.min(4 << 20, Math.floor(READ_BUDGET_BYTES / (8 * Math.max(1, checkpoints.length)))));
  }

  /**
   * Bytes one full pass with these coefficients will read, for progress totals: of every tensor, or of
   * those in `plan` that the writer will ask for (it never asks for a tensor tied to another).
   */
  bytesToRead(coefficients: readonly number[], plan?: readonly OutputTensor[]): number {
    const asked = plan === undefined ? undefined : new Set(plan.filter((tensor) => tensor.tiedTo === undefined).map((tensor) => tensor.name));
    return this.checkpoints.reduce(
      (sum, checkpoint, k) =>
        coefficients[k] === 0
          ? sum
          : sum + checkpoint.tensors().reduce((bytes, tensor) => (asked?.has(tensor.name) === false ? bytes : bytes + tensor.storedBytes), 0),
      0,
    );
  }

  /**
   * The weighted mean of one float tensor in `dtype`, chunk by chunk; a chunk stays valid until the
   * one after next is requested (two output buffers in turn). With `normalize` false it is the
   * weighted sum itself, sum(c_k * theta_k), with no division (the learned soup's coefficients sum to
   * 1 only up to rounding).
   */
  async *stream(tensor: TensorInfo, coefficients: readonly number[], dtype: FloatDType, normalize = true): AsyncGenerator<Uint8Array> {
    const active = this.checkpoints.map((_, k) => k).filter((k) => coefficients[k] !== 0);
    if (active.length === 0) throw new Error('internal: a soup needs at least one ingredient with a non-zero coefficient');
    const weights = active.map((k) => coefficients[k]!);
    const equal = normalize && weights.every((w) => w === weights[0]);
    const divisor = !normalize ? 1 : equal ? active.length : weights.reduce((a, b) => a + b, 0);
    const total = numel(tensor.shape);
    const scratch = this.buffers();

    const kernelDtypes = this.kernelDtypes(active, tensor.name, equal, dtype);
    if (kernelDtypes !== undefined) {
      yield* this.streamInKernel(tensor, coefficients, active, kernelDtypes, divisor, dtype);
      return;
    }
    const inputs: (Float32Array | Float64Array)[] = [];
    for (let start = 0; start < total; start += this.chunk) {
      throwIfAborted(this.options.signal);
      const count = Math.min(this.chunk, total - start);
      const out = this.nextOutput(dtype);
      for (const [j, k] of active.entries()) inputs[j] = await this.checkpoints[k]!.readFloatRange(tensor.name, start, count, scratch[j]);
      const finite = combineRange(inputs, equal ? undefined : weights, divisor, out, 0, count, this.sums);
      yield* this.finishChunk(tensor, coefficients, active, count, total, finite, out);
    }
  }

  /**
   * stream() in the SIMD kernel. When the kernel shares its work with a helper thread, chunks go
   * through a pipeline: the next chunk's inputs are read (into a second set of buffers) while the
   * helper starts on this one, and the chunk after it is posted to the helper before this one is
   * handed to the writer (into a third output buffer), so the helper computes while the writer waits
   * for its last write. Neither thread then idles while the other reads or writes.
   */
  private async *streamInKernel(
    tensor: TensorInfo,
    coefficients: readonly number[],
    active: readonly number[],
    dtypes: readonly KernelDType[],
    divisor: number,
    dtype: FloatDType,
  ): AsyncGenerator<Uint8Array> {
    const total = numel(tensor.shape);
    const chunks = Math.ceil(total / this.chunk);
    const pipelined = this.kernel!.sharesWork;
    const sets = pipelined ? [this.buffers(), this.aheadBuffers()] : [this.buffers()];
    const read = (chunk: number) => {
      const start = chunk * this.chunk;
      return this.readChunk(tensor.name, active, dtypes, start, Math.min(this.chunk, total - start), sets[chunk % sets.length]!);
    };
    const begin = (chunk: number, inputs: readonly KernelArray[]) => {
      const count = Math.min(this.chunk, total - chunk * this.chunk);
      const out = this.nextOutput(dtype);
      return { count, out, finish: this.startInKernel(inputs, count, divisor, out) };
    };
    let current: ReturnType<typeof begin> | undefined;
    try {
      for (let chunk = 0; chunk < chunks; chunk++) {
        throwIfAborted(this.options.signal);
        current ??= begin(chunk, await read(chunk));
        const done = current;
        current = undefined;
        let following: KernelArray[] | undefined;
        let finite = false;
        try {
          if (pipelined && chunk + 1 < chunks) following = await read(chunk + 1);
        } finally {
          finite = done.finish();
        }
        if (following !== undefined) current = begin(chunk + 1, following);
        yield* this.finishChunk(tensor, coefficients, active, done.count, total, finite, done.out);
      }
    } finally {
      // Abandoned with a chunk posted (an error, or the writer stopped asking): let the helper finish it.
      current?.finish();
    }
  }

  /** Progress for a computed chunk, the error if a mean is not finite, and the chunk. */
  private async *finishChunk(
    tensor: TensorInfo,
    coefficients: readonly number[],
    active: readonly number[],
    count: number,
    total: number,
    finite: boolean,
    out: ChunkOutput,
  ): AsyncGenerator<Uint8Array> {
    for (const k of active) this.advance(k, tensor.name, count, total);
    if (!finite && !this.options.allowNonFinite) await this.blameNonFinite(tensor, coefficients);
    yield out.bytes.subarray(0, count * out.elementBytes);
  }

  /**
   * The stored dtype of each input when the SIMD kernel computes this tensor's mean: equal weights,
   * float32 or half inputs read as stored, and a float32 or half output (the common case). Otherwise
   * undefined, and the JS kernel runs; both compute the same bits.
   */
  private kernelDtypes(active: readonly number[], name: string, equal: boolean, dtype: FloatDType): KernelDType[] | undefined {
    if (!equal || dtype === 'F64') return undefined;
    this.memory();
    if (!this.kernel) return undefined;
    const dtypes: KernelDType[] = [];
    for (const k of active) {
      const stored = this.infos[k]!.get(name)?.dtype;
      if (this.checkpoints[k]!.readStoredRange === undefined || (stored !== 'F32' && stored !== 'F16' && stored !== 'BF16')) return undefined;
      dtypes.push(stored);
    }
    return dtypes;
  }

  /** One chunk of every input, as stored, into `buffers`: the kernel's arrays. */
  private async readChunk(
    name: string,
    active: readonly number[],
    dtypes: readonly KernelDType[],
    start: number,
    count: number,
    buffers: readonly { bytes: Uint8Array }[],
  ): Promise<KernelArray[]> {
    const inputs: KernelArray[] = [];
    for (const [j, k] of active.entries()) {
      inputs.push({ address: (await this.checkpoints[k]!.readStoredRange!(name, start, count, buffers[j]!.bytes)).byteOffset, dtype: dtypes[j]! });
    }
    return inputs;
  }

  /**
   * Starts one chunk's means in the SIMD kernel (WasmKernel.start); the returned function finishes
   * them, the last count % KERNEL_STEP in the JS kernel, and returns false if any is NaN or infinite.
   */
  private startInKernel(inputs: readonly KernelArray[], count: number, divisor: number, out: ChunkOutput): () => boolean {
    const kernel = this.kernel!;
    const whole = count - (count % KERNEL_STEP);
    const finish = kernel.start(inputs, divisor, { address: out.bytes.byteOffset, dtype: out.dtype as KernelDType }, whole);
    return () => {
      let finite = finish();
      if (whole < count) {
        const rest = inputs.map(({ address, dtype }) => {
          const size = dtype === 'F32' ? 4 : 2;
          return decodeFloats(new Uint8Array(kernel.memory.buffer, address + whole * size, (count - whole) * size), dtype);
        });
        sumBlock(this.sums, rest, undefined, 0, count - whole);
        finite = out.write(this.sums, count - whole, whole, divisor) && finite;
      }
      return finite;
    };
  }

  /**
   * Integer and bool tensors (step counters, position ids) cannot be averaged: the first chosen
   * ingredient's values are kept, with a warning if the others disagree.
   */
  async copy(tensor: TensorInfo, coefficients: readonly number[]): Promise<Uint8Array> {
    let kept: Uint8Array | undefined;
    let keptFrom: Checkpoint | undefined;
    const differing: string[] = [];
    for (const [k, checkpoint] of this.checkpoints.entries()) {
      if (coefficients[k] === 0) continue;
      throwIfAborted(this.options.signal);
      const bytes = await checkpoint.readBytes(tensor.name);
      this.advance(k, tensor.name);
      if (kept === undefined) {
        kept = bytes;
        keptFrom = checkpoint;
      } else if (Buffer.compare(kept, bytes) !== 0) {
        differing.push(checkpoint.name);
      }
    }
    if (kept === undefined || keptFrom === undefined) throw new Error('internal: a soup needs at least one ingredient');
    if (differing.length > 0 && !this.warnedCopies.has(tensor.name)) {
      this.warnedCopies.add(tensor.name);
      this.onProgress({ kind: 'warning', message: copiedTensorWarning(tensor, differing, keptFrom.name) });
    }
    return kept;
  }

  /**
   * A producer for a checkpoint writer: each output tensor mixed and encoded in its output dtype.
   * `coefficients` are per ingredient, or per tensor and ingredient (a function of the tensor's name);
   * `normalize` as in stream(). Given the writer's `plan`, progress totals leave out the tensors it
   * will not ask for (tied copies).
   */
  producer(
    coefficients: readonly number[] | ((tensor: string) => readonly number[]),
    { normalize = true, plan }: { normalize?: boolean; plan?: readonly OutputTensor[] } = {},
  ): TensorProducer {
    const of = typeof coefficients === 'function' ? coefficients : () => coefficients;
    this.passBytes = this.bytesToRead(typeof coefficients === 'function' ? this.checkpoints.map(() => 1) : coefficients, plan);
    this.bytesRead = 0;
    const byName = new Map(this.checkpoints[0]!.tensors().map((tensor) => [tensor.name, tensor]));
    const mixer = this;
    const produce = async function* (output: OutputTensor) {
      const tensor = byName.get(output.name)!;
      if (isFloatDType(output.dtype)) yield* mixer.stream(tensor, of(output.name), output.dtype, normalize);
      else yield await mixer.copy(tensor, of(output.name));
    };
    // Chunks come from two output buffers in turn; copied tensors are fresh buffers.
    return Object.assign(produce, { alternatesBuffers: true });
  }

  /** Read and output buffers, in the SIMD kernel's memory when it is available. */
  private memory(): (bytes: number) => Uint8Array {
    if (this.kernel === undefined && this.options.simd === false) this.kernel = null;
    if (this.kernel === undefined) {
      const threads = this.wantsThreads();
      const reads = this.readLayouts.reduce((bytes, layout) => bytes + this.chunk * (layout.widest + (layout.widens ? 4 : 0)) + 32, 0);
      const readsAhead = threads ? this.readLayouts.reduce((bytes, layout) => bytes + this.chunk * layout.widest + 16, 0) : 0;
      // The kernel's input table.
      const table = this.checkpoints.length * ENTRY_BYTES + 16;
      this.kernel = WasmKernel.create(reads + readsAhead + (threads ? 3 : 2) * (this.chunk * 8 + 16) + table, { threads }) ?? null;
    }
    const kernel = this.kernel;
    return kernel === null ? (bytes) => new Uint8Array(bytes) : (bytes) => kernel.allocate(bytes);
  }

  /** Stops the kernel's helper thread, if it started one. */
  close(): void {
    this.kernel?.close();
  }

  private wantsThreads(): boolean {
    const { threads = false } = this.options;
    if (threads === false || availableParallelism() < 2) return false;
    if (threads === 'always') return true;
    const elements = this.checkpoints[0]!.tensors().reduce((sum, tensor) => sum + (isFloatDType(tensor.dtype) ? numel(tensor.shape) : 0), 0);
    return elements >= THREADS_MIN_ELEMENTS;
  }

  private buffers(): ChunkScratch[] {
    if (this.scratch === undefined) {
      const allocate = this.memory();
      this.scratch = this.readLayouts.map(({ widest, widens }) => {
        const bytes = allocate(this.chunk * widest);
        if (!widens) return { bytes };
        const floats = allocate(this.chunk * 4);
        return { bytes, floats: new Float32Array(floats.buffer, floats.byteOffset, this.chunk) };
      });
    }
    return this.scratch;
  }

  /** A second set of read buffers (bytes only), for reading one chunk ahead. */
  private aheadBuffers(): { bytes: Uint8Array }[] {
    if (this.ahead === undefined) {
      const allocate = this.memory();
      this.ahead = this.readLayouts.map(({ widest }) => ({ bytes: allocate(this.chunk * widest) }));
    }
    return this.ahead;
  }

  /**
   * The output buffer least recently handed out: with two, a chunk stays valid until the one after
   * next is requested, as the writer expects; a pipelined kernel computes into a third meanwhile.
   */
  private nextOutput(dtype: FloatDType): ChunkOutput {
    if (this.outBuffers === undefined) {
      const allocate = this.memory();
      this.outBuffers = Array.from({ length: this.kernel?.sharesWork ? 3 : 2 }, () => allocate(this.chunk * 8));
    }
    const buffer = this.outBuffers.shift()!;
    this.outBuffers.push(buffer);
    return new ChunkOutput(buffer, dtype);
  }

  private advance(ingredient: number, name: string, elements?: number, total?: number): void {
    const stored = this.infos[ingredient]!.get(name)?.storedBytes ?? 0;
    this.bytesRead += elements === undefined || total === undefined || total === 0 ? stored : (stored * elements) / total;
    this.onProgress({ kind: 'read', bytes: Math.round(this.bytesRead), total: this.passBytes });
  }

  /** The mean is not finite: find the ingredient and element responsible, for the error message. */
  private async blameNonFinite(tensor: TensorInfo, coefficients: readonly number[]): Promise<never> {
    for (const [k, checkpoint] of this.checkpoints.entries()) {
      if (coefficients[k] === 0) continue;
      const values = await checkpoint.readFloats(tensor.name);
      const at = indexOfNonFinite(values);
      if (at >= 0) {
        throw new InputError(checkpoint.path, `holds ${values[at]} at element ${at}; a soup of it would be ${values[at]} too`, {
          tensor: tensor.name,
          hint: 'leave this diverged run out (remove it from the inputs, or make a greedy soup, which scores it and leaves it out), or keep it in with --allow-nonfinite',
        });
      }
    }
    throw new InputError(this.checkpoints[0]!.path, 'the weighted mean overflowed to infinity', { tensor: tensor.name });
  }
}

/** The warning when an integer or bool tensor differs between ingredients and one copy is kept. */
export function copiedTensorWarning(tensor: TensorInfo, differing: readonly string[], kept: string): string {
  return `${tensor.dtype} tensor "${tensor.name}" differs between ingredients (${differing.join(', ')} differ from ${kept}); kept ${kept}'s values`;
}
