import type { DType } from '../dtype.js';

/**
 * A restricted unpickler for torch.save's data.pkl, modelled on torch's weights_only loader
 * (torch/_weights_only_unpickler.py): it knows the opcodes of pickle protocols 2 and 4 and an
 * allow-list of globals, and builds plain data (Maps, arrays, numbers, tensor descriptors). Nothing
 * from the file is ever called: an allowed global maps to a function of ours, any other global is
 * refused by name. It is iterative, so hostile nesting cannot overflow the JavaScript stack.
 */

export const LIMITS = {
  /** data.pkl of a state dict holds about 100 bytes per tensor. */
  pickleBytes: 256 * 1024 * 1024,
  stack: 100_000,
  /** MARKs open at once: how deeply tuples, lists and dicts nest while being built. */
  depth: 10_000,
  memo: 5_000_000,
  stringBytes: 64 * 1024 * 1024,
  /** Bytes of one pickled integer (LONG1/LONG4). */
  longBytes: 1024,
  /**
   * Values the whole load may build or copy (every push, every item a set(), torch.Size() or APPENDS
   * copies): sizes and depth alone let a small pickle apply set() to one memoized list thousands of
   * times. A state dict needs about 30 per tensor.
   */
  work: 20_000_000,
  /** Bytes the whole load may materialise (bytes, bytearray(), _codecs.encode), over all strings. */
  builtBytes: 256 * 1024 * 1024,
};

/** What a pickle may hold once loaded. Dicts are Maps, so no key can reach a prototype. */
export type PyValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | PyValue[]
  | PyTuple
  | PyDict
  | PySet
  | PyGlobal
  | TorchType
  | StorageRef
  | TensorRef
  | UnsupportedTensor;
export type PyDict = Map<PyValue, PyValue>;

export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}

export class PySet {
  constructor(readonly items: PyValue[]) {}
}

/** An allowed global, named; applying it runs our handler, never anything from the file. */
export class PyGlobal {
  constructor(readonly fullName: string) {}
}

/** A torch dtype or storage class: one we read, or one we name in a "not supported" error. */
export class TorchType {
  constructor(
    readonly fullName: string,
    readonly dtype: DType | undefined,
    /** "complex64", "quantized qint8", ... for types soup cannot average or copy. */
    readonly unsupported?: string,
    /** torch.UntypedStorage: bytes whose dtype comes from the tensor. */
    readonly untyped = false,
  ) {}
}

/** A storage named by a persistent id: its bytes are the archive record data/<key>. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly type: TorchType,
    readonly location: string,
    /** Elements of `type` (bytes for an untyped storage). */
    readonly numel: number,
  ) {}
}

/** A tensor as torch's _rebuild_tensor_v2 describes it: a strided view into a storage. */
export class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly type: TorchType,
    readonly offset: number,
    readonly shape: number[],
    readonly stride: number[],
  ) {}
}

/** A sparse, quantized, meta or subclass tensor: soup can say what it is, not read it. */
export class UnsupportedTensor {
  constructor(readonly kind: string) {}
}

export class PickleError extends Error {}

const STORAGE_TYPES: Record<string, [DType | undefined, string?]> = {
  FloatStorage: ['F32'],
  DoubleStorage: ['F64'],
  HalfStorage: ['F16'],
  BFloat16Storage: ['BF16'],
  LongStorage: ['I64'],
  IntStorage: ['I32'],
  ShortStorage: ['I16'],
  CharStorage: ['I8'],
  ByteStorage: ['U8'],
  BoolStorage: ['BOOL'],
  ComplexFloatStorage: [undefined, 'complex64'],
  ComplexDoubleStorage: [undefined, 'complex128'],
  QInt8Storage: [undefined, 'quantized (qint8)'],
  QUInt8Storage: [undefined, 'quantized (quint8)'],
  QInt32Storage: [undefined, 'quantized (qint32)'],
  QUInt4x2Storage: [undefined, 'quantized (quint4x2)'],
  QUInt2x4Storage: [undefined, 'quantized (quint2x4)'],
};

const DTYPE_NAMES: Record<string, [DType | undefined, string?]> = {
  float32: ['F32'],
  float: ['F32'],
  float64: ['F64'],
  double: ['F64'],
  float16: ['F16'],
  half: ['F16'],
  bfloat16: ['BF16'],
  int64: ['I64'],
  long: ['I64'],
  int32: ['I32'],
  int: ['I32'],
  int16: ['I16'],
  short: ['I16'],
  int8: ['I8'],
  uint8: ['U8'],
  uint16: ['U16'],
  uint32: ['U32'],
  uint64: ['U64'],
  bool: ['BOOL'],
  complex32: [undefined, 'complex32'],
  chalf: [undefined, 'complex32'],
  complex64: [undefined, 'complex64'],
  cfloat: [undefined, 'complex64'],
  complex128: [undefined, 'complex128'],
  cdouble: [undefined, 'complex128'],
  qint8: [undefined, 'quantized (qint8)'],
  quint8: [undefined, 'quantized (quint8)'],
  qint32: [undefined, 'quantized (qint32)'],
  quint4x2: [undefined, 'quantized (quint4x2)'],
  quint2x4: [undefined, 'quantized (quint2x4)'],
  float8_e4m3fn: [undefined, 'float8_e4m3fn'],
  float8_e5m2: [undefined, 'float8_e5m2'],
  float8_e4m3fnuz: [undefined, 'float8_e4m3fnuz'],
  float8_e5m2fnuz: [undefined, 'float8_e5m2fnuz'],
};

/** torch functions we know and refuse with a reason, rather than as unknown code. */
const UNSUPPORTED_REBUILDS: Record<string, string> = {
  'torch._utils._rebuild_qtensor': 'quantized',
  'torch._utils._rebuild_sparse_tensor': 'sparse',
  'torch._utils._rebuild_sparse_csr_tensor': 'sparse',
  'torch._utils._rebuild_meta_tensor_no_storage': 'meta',
  'torch._utils._rebuild_wrapper_subclass': 'tensor-subclass',
  'torch._utils._rebuild_device_tensor_from_numpy': 'numpy-backed',
  'torch._utils._rebuild_device_tensor_from_cpu_tensor': 'device',
  'torch._tensor._rebuild_from_type_v2': 'tensor-subclass',
};

const CALLABLES = new Set([
  'collections.OrderedDict',
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor_v3',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch.Size',
  'torch.device',
  '_codecs.encode',
  'builtins.set',
  'builtins.bytearray',
]);

/** Protocol 2 pickles written by Python 3 name builtins as Python 2 did. */
function normalizeGlobal(module: string, name: string): string {
  return `${module === '__builtin__' ? 'builtins' : module}.${name}`;
}

/** Resolves a global against the allow-list; anything else is refused with what to do instead. */
export function resolveGlobal(module: string, name: string): PyValue {
  const full = normalizeGlobal(module, name);
  if (CALLABLES.has(full) || Object.hasOwn(UNSUPPORTED_REBUILDS, full)) return new PyGlobal(full);
  if ((module === 'torch' || module === 'torch.storage') && name === 'UntypedStorage') return new TorchType(full, 'U8', undefined, true);
  if (module === 'torch' && Object.hasOwn(STORAGE_TYPES, name)) {
    const [dtype, unsupported] = STORAGE_TYPES[name]!;
    return new TorchType(full, dtype, unsupported);
  }
  if (module === 'torch' && Object.hasOwn(DTYPE_NAMES, name)) {
    const [dtype, unsupported] = DTYPE_NAMES[name]!;
    return new TorchType(full, dtype, unsupported);
  }
  throw new PickleError(refusal(module === '__builtin__' ? 'builtins' : module, full));
}

const CODE_RUNNING =
  /^(os|posix|nt|sys|subprocess|builtins|shutil|socket|importlib|runpy|pty|commands|webbrowser|code|codeop|ctypes|pickle|_pickle|marshal|types|operator|functools|pdb|timeit|asyncio|multiprocessing|urllib|requests|http|ftplib|tempfile|pathlib|io|_io|glob|zipimport|platform|signal|threading)(\.|$)/;

function refusal(module: string, full: string): string {
  if (module === '__main__' || module.startsWith('torch.nn.') || module.startsWith('torch.jit') || module.startsWith('transformers.')) {
    return `refused global ${full}: this is a whole pickled model (torch.save(model)); save model.state_dict() instead`;
  }
  if (CODE_RUNNING.test(module)) {
    return `refused global ${full}: it would run code when unpickled, and soup never runs code from a file; save tensors only, with torch.save(model.state_dict(), path)`;
  }
  return `refused global ${full}: only tensors, dicts, lists, strings and numbers are read (torch's weights-only allow-list); save model.state_dict() instead`;
}

const OP = {
  PROTO: 0x80,
  FRAME: 0x95,
  STOP: 0x2e,
  MARK: 0x28,
  POP: 0x30,
  POP_MARK: 0x31,
  DUP: 0x32,
  NONE: 0x4e,
  NEWTRUE: 0x88,
  NEWFALSE: 0x89,
  BININT: 0x4a,
  BININT1: 0x4b,
  BININT2: 0x4d,
  LONG1: 0x8a,
  LONG4: 0x8b,
  BINFLOAT: 0x47,
  BINUNICODE: 0x58,
  SHORT_BINUNICODE: 0x8c,
  BINUNICODE8: 0x8d,
  SHORT_BINSTRING: 0x55,
  BINSTRING: 0x54,
  BINBYTES: 0x42,
  SHORT_BINBYTES: 0x43,
  BINBYTES8: 0x8e,
  EMPTY_LIST: 0x5d,
  APPEND: 0x61,
  APPENDS: 0x65,
  LIST: 0x6c,
  EMPTY_TUPLE: 0x29,
  TUPLE: 0x74,
  TUPLE1: 0x85,
  TUPLE2: 0x86,
  TUPLE3: 0x87,
  EMPTY_DICT: 0x7d,
  DICT: 0x64,
  SETITEM: 0x73,
  SETITEMS: 0x75,
  EMPTY_SET: 0x8f,
  ADDITEMS: 0x90,
  FROZENSET: 0x91,
  GLOBAL: 0x63,
  STACK_GLOBAL: 0x93,
  REDUCE: 0x52,
  NEWOBJ: 0x81,
  BUILD: 0x62,
  BINPERSID: 0x51,
  BINGET: 0x68,
  LONG_BINGET: 0x6a,
  BINPUT: 0x71,
  LONG_BINPUT: 0x72,
  MEMOIZE: 0x94,
} as const;

export interface UnpickleOptions {
  /** Turns a persistent id (torch's storage tuple) into a value; the default reads torch storages. */
  persistentLoad?: (pid: PyValue) => PyValue;
}

/**
 * Loads one pickle from `bytes`. Throws PickleError (with the byte offset) for anything malformed,
 * refused or over a limit; the caller turns it into an InputError naming the file.
 */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): PyValue {
  return new Unpickler(bytes, options).load().value;
}

/** Loads the pickle that starts at `start` and says where it ends: legacy files hold several back to back. */
export function unpickleAt(bytes: Uint8Array, start: number, options: UnpickleOptions = {}): { value: PyValue; end: number } {
  return new Unpickler(bytes, options, start).load();
}

class Unpickler {
  private pos = 0;
  private stack: PyValue[] = [];
  private readonly metastack: PyValue[][] = [];
  private readonly memo = new Map<number, PyValue>();
  private readonly view: DataView;
  private readonly storages = new Map<string, StorageRef>();
  private readonly utf8 = new TextDecoder('utf-8', { fatal: true });
  private work = 0;
  private builtBytes = 0;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly options: UnpickleOptions,
    start = 0,
  ) {
    this.pos = start;
    if (bytes.byteLength > LIMITS.pickleBytes) throw new PickleError(`pickle is ${bytes.byteLength} bytes, more than the ${LIMITS.pickleBytes} allowed`);
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  load(): { value: PyValue; end: number } {
    for (;;) {
      const at = this.pos;
      const op = this.u8();
      try {
        if (op === OP.STOP) {
          if (this.stack.length !== 1 || this.metastack.length !== 0) throw new PickleError('STOP with an unbalanced stack');
          return { value: this.stack[0]!, end: this.pos };
        }
        this.step(op);
      } catch (error) {
        if (error instanceof PickleError && !error.message.includes(' at byte ')) {
          throw new PickleError(`${error.message} (opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at})`);
        }
        throw error;
      }
    }
  }

  private step(op: number): void {
    switch (op) {
      case OP.PROTO: {
        const protocol = this.u8();
        if (protocol > 5) throw new PickleError(`unsupported pickle protocol ${protocol}`);
        return;
      }
      case OP.FRAME:
        this.u64();
        return;
      case OP.MARK:
        if (this.metastack.length >= LIMITS.depth) throw new PickleError(`nesting deeper than ${LIMITS.depth} levels`);
        this.metastack.push(this.stack);
        this.stack = [];
        return;
      case OP.POP:
        if (this.stack.length > 0) this.stack.pop();
        else this.popMark();
        return;
      case OP.POP_MARK:
        this.popMark();
        return;
      case OP.DUP:
        return this.push(this.top());
      case OP.NONE:
        return this.push(null);
      case OP.NEWTRUE:
        return this.push(true);
      case OP.NEWFALSE:
        return this.push(false);
      case OP.BININT:
        this.need(4);
        this.pos += 4;
        return this.push(this.view.getInt32(this.pos - 4, true));
      case OP.BININT1:
        return this.push(this.u8());
      case OP.BININT2:
        this.need(2);
        this.pos += 2;
        return this.push(this.view.getUint16(this.pos - 2, true));
      case OP.LONG1:
        return this.push(this.long(this.u8()));
      case OP.LONG4: {
        const length = this.i32();
        if (length < 0 || length > LIMITS.longBytes) throw new PickleError(`integer of ${length} bytes (at most ${LIMITS.longBytes} allowed)`);
        return this.push(this.long(length));
      }
      case OP.BINFLOAT:
        this.need(8);
        this.pos += 8;
        return this.push(this.view.getFloat64(this.pos - 8, false));
      case OP.BINUNICODE:
        return this.push(this.text(this.u32()));
      case OP.SHORT_BINUNICODE:
      case OP.SHORT_BINSTRING:
        return this.push(this.text(this.u8()));
      case OP.BINUNICODE8:
        return this.push(this.text(this.u64()));
      case OP.BINSTRING:
        return this.push(this.text(this.i32()));
      case OP.BINBYTES:
        return this.push(this.copyBytes(this.take(this.u32())));
      case OP.SHORT_BINBYTES:
        return this.push(this.copyBytes(this.take(this.u8())));
      case OP.BINBYTES8:
        return this.push(this.copyBytes(this.take(this.u64())));
      case OP.EMPTY_LIST:
        return this.push([]);
      case OP.LIST:
        return this.push(this.popMark());
      case OP.APPEND: {
        const value = this.pop();
        this.list(this.top()).push(value);
        return;
      }
      case OP.APPENDS: {
        const items = this.popMark();
        const list = this.list(this.top());
        this.spend(items.length);
        for (const item of items) list.push(item);
        return;
      }
      case OP.EMPTY_TUPLE:
        return this.push(new PyTuple([]));
      case OP.TUPLE:
        return this.push(new PyTuple(this.popMark()));
      case OP.TUPLE1:
      case OP.TUPLE2:
      case OP.TUPLE3: {
        const n = op - OP.TUPLE1 + 1;
        if (this.stack.length < n) throw new PickleError('stack underflow');
        return this.push(new PyTuple(this.stack.splice(this.stack.length - n, n)));
      }
      case OP.EMPTY_DICT:
        return this.push(new Map());
      case OP.DICT: {
        const items = this.popMark();
        const dict: PyDict = new Map();
        this.setItems(dict, items);
        return this.push(dict);
      }
      case OP.SETITEM: {
        const value = this.pop();
        const key = this.pop();
        this.setItems(this.dict(this.top()), [key, value]);
        return;
      }
      case OP.SETITEMS: {
        const items = this.popMark();
        this.setItems(this.dict(this.top()), items);
        return;
      }
      case OP.EMPTY_SET:
        return this.push(new PySet([]));
      case OP.ADDITEMS: {
        const items = this.popMark();
        const set = this.top();
        if (!(set instanceof PySet)) throw new PickleError('ADDITEMS on something that is not a set');
        this.spend(items.length);
        for (const item of items) set.items.push(item);
        return;
      }
      case OP.FROZENSET:
        return this.push(new PySet(this.popMark()));
      case OP.GLOBAL: {
        const module = this.line();
        const name = this.line();
        return this.push(resolveGlobal(module, name));
      }
      case OP.STACK_GLOBAL: {
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new PickleError('STACK_GLOBAL with a module or name that is not a string');
        return this.push(resolveGlobal(module, name));
      }
      case OP.REDUCE: {
        const args = this.pop();
        const callable = this.pop();
        if (!(args instanceof PyTuple)) throw new PickleError('REDUCE with arguments that are not a tuple');
        return this.push(this.apply(callable, args.items));
      }
      case OP.NEWOBJ: {
        const args = this.pop();
        const cls = this.pop();
        if (!(cls instanceof PyGlobal) || !['collections.OrderedDict', 'builtins.set'].includes(cls.fullName) || !(args instanceof PyTuple)) {
          throw new PickleError(`NEWOBJ of ${describe(cls)} is not allowed`);
        }
        return this.push(this.apply(cls, args.items));
      }
      case OP.BUILD: {
        // torch sets attributes (state_dict()'s _metadata, a tensor's requires_grad): none matter for weights.
        this.pop();
        const target = this.top();
        if (!(target instanceof Map) && !(target instanceof TensorRef) && !(target instanceof UnsupportedTensor)) {
          throw new PickleError(`BUILD on ${describe(target)} is not allowed`);
        }
        return;
      }
      case OP.BINPERSID: {
        const pid = this.pop();
        return this.push(this.options.persistentLoad === undefined ? this.loadStorage(pid) : this.options.persistentLoad(pid));
      }
      case OP.BINGET:
        return this.push(this.get(this.u8()));
      case OP.LONG_BINGET:
        return this.push(this.get(this.u32()));
      case OP.BINPUT:
        return this.put(this.u8());
      case OP.LONG_BINPUT:
        return this.put(this.u32());
      case OP.MEMOIZE:
        return this.put(this.memo.size);
      default:
        throw new PickleError(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')}`);
    }
  }

  /** Allowed globals, applied by our own code: nothing from the file runs. */
  private apply(callable: PyValue, args: PyValue[]): PyValue {
    if (!(callable instanceof PyGlobal)) throw new PickleError(`cannot call ${describe(callable)}`);
    const unsupported = UNSUPPORTED_REBUILDS[callable.fullName];
    if (unsupported !== undefined) return new UnsupportedTensor(unsupported);
    switch (callable.fullName) {
      case 'collections.OrderedDict': {
        const dict: PyDict = new Map();
        if (args.length > 0 && Array.isArray(args[0])) {
          for (const pair of args[0]) {
            if (!(pair instanceof PyTuple) || pair.items.length !== 2) throw new PickleError('OrderedDict items are not pairs');
            this.setItems(dict, pair.items);
          }
        }
        return dict;
      }
      case 'torch._utils._rebuild_tensor':
      case 'torch._utils._rebuild_tensor_v2':
        return rebuildTensor(args[0], args[0] instanceof StorageRef ? args[0].type : undefined, args[1], args[2], args[3]);
      case 'torch._utils._rebuild_tensor_v3':
        return rebuildTensor(args[0], args[6], args[1], args[2], args[3]);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state': {
        const data = args[0];
        if (!(data instanceof TensorRef) && !(data instanceof UnsupportedTensor)) throw new PickleError('a Parameter without a tensor');
        return data;
      }
      case 'torch.Size': {
        const sizes = args[0];
        if (!(sizes instanceof PyTuple)) throw new PickleError('torch.Size of something that is not a tuple');
        this.spend(sizes.items.length);
        return new PyTuple([...sizes.items]);
      }
      case 'torch.device':
        return args.map((arg) => String(arg)).join(':');
      case '_codecs.encode': {
        const [text, encoding] = args;
        if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1'))
          throw new PickleError('_codecs.encode with other arguments than (str, "latin1")');
        this.spendBytes(text.length);
        return latin1(text);
      }
      case 'builtins.set': {
        const items = args[0];
        if (args.length === 0) return new PySet([]);
        if (!Array.isArray(items)) throw new PickleError('set() of something that is not a list');
        this.spend(items.length);
        return new PySet([...items]);
      }
      case 'builtins.bytearray': {
        const [data, encoding] = args;
        if (data === undefined) return new Uint8Array(0);
        if (data instanceof Uint8Array) return this.copyBytes(data);
        if (typeof data === 'string' && (encoding === 'latin1' || encoding === 'latin-1')) {
          this.spendBytes(data.length);
          return latin1(data);
        }
        throw new PickleError('bytearray() of something that is not bytes');
      }
      default:
        throw new PickleError(`cannot call ${callable.fullName}`);
    }
  }

  /** torch's persistent id for a storage: ('storage', storage type, key, location, numel). */
  private loadStorage(pid: PyValue): StorageRef {
    if (!(pid instanceof PyTuple) || pid.items[0] !== 'storage' || pid.items.length < 5) throw new PickleError(`unknown persistent id ${describe(pid)}`);
    const [, type, key, location, numel] = pid.items;
    // The legacy format's sixth field describes a view into another storage (PyTorch < 1.0).
    if (pid.items.length > 5 && pid.items[5] !== null)
      throw new PickleError('a storage view of the pre-1.0 format, which soup does not read; re-save it with a current torch.save');
    if (!(type instanceof TorchType)) throw new PickleError(`storage of ${describe(type)}, not a torch storage type`);
    if (typeof key !== 'string' || !/^[A-Za-z0-9_.-]{1,200}$/.test(key)) throw new PickleError(`storage key ${describe(key)} is not a plain name`);
    if (!isCount(numel)) throw new PickleError(`storage ${key} has a size that is not a non-negative integer`);
    const known = this.storages.get(key);
    if (known !== undefined) {
      if (known.type.fullName !== type.fullName || known.numel !== numel) throw new PickleError(`storage ${key} is described twice, differently`);
      return known;
    }
    const storage = new StorageRef(key, type, typeof location === 'string' ? location : describe(location), numel);
    this.storages.set(key, storage);
    return storage;
  }

  /** Counts values built or copied against LIMITS.work, so no small pickle can build a huge value graph. */
  private spend(items: number): void {
    this.work += items;
    if (this.work > LIMITS.work) throw new PickleError(`builds more than ${LIMITS.work} values (a pickle that copies the same data over and over)`);
  }

  private spendBytes(bytes: number): void {
    this.builtBytes += bytes;
    if (this.builtBytes > LIMITS.builtBytes) throw new PickleError(`materialises more than ${LIMITS.builtBytes} bytes of strings and bytes`);
  }

  private copyBytes(bytes: Uint8Array): Uint8Array {
    this.spendBytes(bytes.length);
    return bytes.slice();
  }

  private setItems(dict: PyDict, items: PyValue[]): void {
    if (items.length % 2 !== 0) throw new PickleError('dict items are not key-value pairs');
    this.spend(items.length / 2);
    for (let i = 0; i < items.length; i += 2) dict.set(items[i]!, items[i + 1]!);
  }

  private push(value: PyValue): void {
    if (this.stack.length >= LIMITS.stack) throw new PickleError(`stack deeper than ${LIMITS.stack} entries`);
    this.spend(1);
    this.stack.push(value);
  }

  private pop(): PyValue {
    if (this.stack.length === 0) throw new PickleError('stack underflow');
    return this.stack.pop()!;
  }

  private top(): PyValue {
    if (this.stack.length === 0) throw new PickleError('stack underflow');
    return this.stack[this.stack.length - 1]!;
  }

  private popMark(): PyValue[] {
    const items = this.stack;
    const previous = this.metastack.pop();
    if (previous === undefined) throw new PickleError('no MARK to return to');
    this.stack = previous;
    return items;
  }

  private list(value: PyValue): PyValue[] {
    if (!Array.isArray(value)) throw new PickleError(`APPEND to ${describe(value)}, not a list`);
    return value;
  }

  private dict(value: PyValue): PyDict {
    if (!(value instanceof Map)) throw new PickleError(`SETITEM on ${describe(value)}, not a dict`);
    return value;
  }

  private get(index: number): PyValue {
    const value = this.memo.get(index);
    if (value === undefined) throw new PickleError(`memo entry ${index} was never stored`);
    return value;
  }

  private put(index: number): void {
    if (this.memo.size >= LIMITS.memo && !this.memo.has(index)) throw new PickleError(`more than ${LIMITS.memo} memo entries`);
    this.memo.set(index, this.top());
  }

  private need(n: number): void {
    if (this.pos + n > this.bytes.length) throw new PickleError('pickle ends in the middle of an opcode (truncated)');
  }

  private u8(): number {
    this.need(1);
    return this.bytes[this.pos++]!;
  }

  private u32(): number {
    this.need(4);
    this.pos += 4;
    return this.view.getUint32(this.pos - 4, true);
  }

  private i32(): number {
    this.need(4);
    this.pos += 4;
    return this.view.getInt32(this.pos - 4, true);
  }

  private u64(): number {
    this.need(8);
    this.pos += 8;
    const value = this.view.getBigUint64(this.pos - 8, true);
    return value > BigInt(this.bytes.length) ? Number.MAX_SAFE_INTEGER : Number(value);
  }

  private take(length: number): Uint8Array {
    if (length < 0 || length > LIMITS.stringBytes) throw new PickleError(`string of ${length} bytes (at most ${LIMITS.stringBytes} allowed)`);
    this.need(length);
    this.pos += length;
    return this.bytes.subarray(this.pos - length, this.pos);
  }

  private text(length: number): string {
    const bytes = this.take(length);
    try {
      return this.utf8.decode(bytes);
    } catch {
      throw new PickleError('string is not valid UTF-8');
    }
  }

  /** A newline-terminated ASCII line (GLOBAL's module and name). */
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0 || end - this.pos > 1000) throw new PickleError('GLOBAL without a newline-terminated name');
    const text = this.text(end - this.pos);
    this.pos = end + 1;
    return text;
  }

  /** Little-endian two's complement, exact: a BigInt beyond 2^53. */
  private long(length: number): number | bigint {
    const bytes = this.take(length);
    if (length === 0) return 0;
    let value = 0n;
    for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
    if (bytes[length - 1]! & 0x80) value -= 1n << BigInt(8 * length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  }
}

function rebuildTensor(
  storage: PyValue | undefined,
  type: PyValue | undefined,
  offset: PyValue | undefined,
  size: PyValue | undefined,
  stride: PyValue | undefined,
): TensorRef {
  if (!(storage instanceof StorageRef)) throw new PickleError(`a tensor whose storage is ${describe(storage)}`);
  if (!(type instanceof TorchType)) throw new PickleError(`a tensor whose dtype is ${describe(type)}`);
  if (!isCount(offset)) throw new PickleError('a tensor whose storage offset is not a non-negative integer');
  const shape = counts(size, 'size');
  const strides = counts(stride, 'stride');
  if (shape.length !== strides.length) throw new PickleError(`a tensor with ${shape.length} sizes but ${strides.length} strides`);
  return new TensorRef(storage, type, offset, shape, strides);
}

function counts(value: PyValue | undefined, what: string): number[] {
  if (!(value instanceof PyTuple) || value.items.length > 64 || !value.items.every(isCount)) {
    throw new PickleError(`a tensor whose ${what} is not a tuple of non-negative integers`);
  }
  return value.items as number[];
}

function isCount(value: PyValue | undefined): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function latin1(text: string): Uint8Array {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code > 0xff) throw new PickleError('_codecs.encode of a string that is not latin-1');
    out[i] = code;
  }
  return out;
}

/** A short name for a value in an error message; never walks into nested values. */
export function describe(value: PyValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'None';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
  if (typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  if (value instanceof Uint8Array) return `bytes (${value.length})`;
  if (Array.isArray(value)) return 'a list';
  if (value instanceof PyTuple) return 'a tuple';
  if (value instanceof Map) return 'a dict';
  if (value instanceof PySet) return 'a set';
  if (value instanceof PyGlobal || value instanceof TorchType) return value.fullName;
  if (value instanceof StorageRef) return 'a storage';
  if (value instanceof TensorRef) return 'a tensor';
  return `a ${value.kind} tensor`;
}
