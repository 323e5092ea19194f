import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LIMITS, PickleError, PySet, PyTuple, TensorRef, unpickle } from '../../../src/checkpoint/pytorch/unpickle.js';
import { Pickle, callingPickle, pushTensor } from '../../helpers/torch.js';

describe('restricted unpickler', () => {
  it('builds dicts as Maps, so no key reaches a prototype', () => {
    const value = unpickle(new Pickle().proto(2).emptyDict().unicode('__proto__').unicode('polluted').setItem().stop().bytes());
    assert.ok(value instanceof Map);
    assert.equal(value.get('__proto__'), 'polluted');
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  it('keeps integers beyond 2^53 exact as BigInt, and smaller ones as numbers', () => {
    const p = new Pickle()
      .proto(2)
      .mark()
      .long(2n ** 53n + 1n)
      .long(-(2n ** 70n))
      .long(-5n)
      .int(-7)
      .int(300)
      .float(0.25)
      .tuple()
      .stop();
    const value = unpickle(p.bytes()) as PyTuple;
    assert.deepEqual(value.items, [2n ** 53n + 1n, -(2n ** 70n), -5, -7, 300, 0.25]);
  });

  it('reads protocol 4 framing, memoization and short strings', () => {
    const p = new Pickle()
      .proto(4)
      .raw(0x95, 20, 0, 0, 0, 0, 0, 0, 0)
      .raw(0x7d, 0x94)
      .shortUnicode('a')
      .raw(0x94)
      .raw(0x5d, 0x94)
      .raw(0x68, 1)
      .raw(0x61)
      .setItem()
      .stop();
    const value = unpickle(p.bytes()) as Map<unknown, unknown>;
    assert.deepEqual([...value.entries()], [['a', ['a']]]);
  });

  it('builds sets, bytes (via _codecs.encode) and torch.Size from allowed globals only', () => {
    const p = new Pickle().proto(2).mark();
    p.global('__builtin__', 'set').emptyList().unicode('x').append().tupleN(1).reduce();
    p.global('_codecs', 'encode').unicode('\u00ff\u0001').unicode('latin1').tupleN(2).reduce();
    p.global('torch', 'Size').ints([2, 3]).tupleN(1).reduce();
    const value = unpickle(p.tuple().stop().bytes()) as PyTuple;
    assert.deepEqual(value.items[0], new PySet(['x']));
    assert.deepEqual(value.items[1], Uint8Array.from([0xff, 1]));
    assert.deepEqual(value.items[2], new PyTuple([2, 3]));
  });

  it('describes a tensor without reading or calling anything', () => {
    const p = pushTensor(new Pickle().proto(2), { name: 'w', key: '3', numel: 6, offset: 1, shape: [2, 2], stride: [1, 2] }).stop();
    const tensor = unpickle(p.bytes()) as TensorRef;
    assert.ok(tensor instanceof TensorRef);
    assert.deepEqual(
      [tensor.storage.key, tensor.storage.numel, tensor.type.dtype, tensor.offset, tensor.shape, tensor.stride],
      ['3', 6, 'F32', 1, [2, 2], [1, 2]],
    );
  });

  const calls: [2 | 4, string, string, string][] = [
    [2, 'os', 'system', 'refused global os.system: it would run code when unpickled'],
    [4, 'os', 'system', 'refused global os.system: it would run code when unpickled'],
    [2, 'posix', 'system', 'refused global posix.system: it would run code when unpickled'],
    [2, '__builtin__', 'eval', 'refused global builtins.eval: it would run code when unpickled'],
    [4, 'builtins', 'exec', 'refused global builtins.exec: it would run code when unpickled'],
    [2, 'subprocess', 'Popen', 'refused global subprocess.Popen: it would run code when unpickled'],
    [4, 'subprocess', 'Popen', 'refused global subprocess.Popen: it would run code when unpickled'],
    [2, '__main__', 'MyModel', 'refused global __main__.MyModel: this is a whole pickled model (torch.save(model)); save model.state_dict() instead'],
    [2, 'numpy.core.multiarray', '_reconstruct', 'refused global numpy.core.multiarray._reconstruct: only tensors, dicts, lists, strings and numbers are read'],
  ];
  for (const [protocol, module, name, message] of calls) {
    it(`refuses ${module}.${name} in protocol ${protocol} by name`, () => {
      assert.throws(
        () => unpickle(callingPickle(protocol, module, name, 'touch MARKER')),
        (error: Error) => {
          assert.ok(error instanceof PickleError);
          assert.ok(error.message.startsWith(message), error.message);
          return true;
        },
      );
    });
  }

  it('refuses to call an allowed class with NEWOBJ unless it is a dict or set, and BUILD on anything else', () => {
    const newobj = new Pickle().proto(2).global('torch', 'Size').emptyTuple().raw(0x81).stop().bytes();
    assert.throws(() => unpickle(newobj), /NEWOBJ of torch\.Size is not allowed \(opcode 0x81 at byte 15\)/);
    const build = new Pickle().proto(2).emptyList().emptyDict().build().stop().bytes();
    assert.throws(() => unpickle(build), /BUILD on a list is not allowed/);
  });

  it('ends 200,000-deep nesting with a clean error, without recursion', () => {
    const marks = new Pickle().proto(2);
    for (let i = 0; i < 200_000; i++) marks.mark();
    assert.throws(() => unpickle(marks.stop().bytes()), new RegExp(`nesting deeper than ${LIMITS.depth} levels`));
    const lists = new Pickle().proto(2);
    for (let i = 0; i < 200_000; i++) lists.emptyList();
    for (let i = 0; i < 199_999; i++) lists.append();
    assert.throws(() => unpickle(lists.stop().bytes()), new RegExp(`stack deeper than ${LIMITS.stack} entries`));
  });

  it('refuses strings longer than the pickle, and truncated pickles', () => {
    assert.throws(
      () => unpickle(new Pickle().proto(2).raw(0x58, 0xff, 0xff, 0xff, 0x7f).stop().bytes()),
      /string of 2147483647 bytes \(at most 67108864 allowed\)/,
    );
    assert.throws(() => unpickle(new Pickle().proto(2).raw(0x58, 10, 0, 0, 0, 0x41).bytes()), /pickle ends in the middle of an opcode \(truncated\)/);
    assert.throws(() => unpickle(new Pickle().proto(2).emptyDict().bytes()), /pickle ends in the middle of an opcode/);
  });

  it('refuses unknown opcodes, dangling memo references and unbalanced stacks', () => {
    assert.throws(() => unpickle(new Pickle().proto(2).raw(0x69).stop().bytes()), /unsupported pickle opcode 0x69 \(opcode 0x69 at byte 2\)/);
    assert.throws(() => unpickle(new Pickle().proto(2).get(9).stop().bytes()), /memo entry 9 was never stored/);
    assert.throws(() => unpickle(new Pickle().proto(2).none().none().stop().bytes()), /STOP with an unbalanced stack/);
    assert.throws(() => unpickle(new Pickle().proto(2).setItem().stop().bytes()), /stack underflow/);
  });

  it('refuses a pickle that copies one 8 MB bytes object 40 times, by the bytes it materialises in all', () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const header = Buffer.alloc(5);
    header[0] = 0x42;
    header.writeUInt32LE(big.length, 1);
    const copies = new Pickle().put(0).global('__builtin__', 'bytearray').put(1).get(0).tupleN(1).reduce();
    for (let i = 1; i < 40; i++) copies.get(1).get(0).tupleN(1).reduce();
    const bytes = Buffer.concat([new Pickle().proto(2).mark().bytes(), header, big, copies.tuple().stop().bytes()]);
    assert.throws(() => unpickle(bytes), new RegExp(`materialises more than ${LIMITS.builtBytes} bytes of strings and bytes`));
  });

  it('refuses a pickle that builds set() of one memoized list over and over, by the values it builds in all', () => {
    const p = new Pickle().proto(2).emptyList().put(0).mark();
    for (let i = 0; i < 100_000; i++) p.int(1);
    p.raw(0x65).emptyList().mark().global('__builtin__', 'set').put(1).get(0).tupleN(1).reduce();
    for (let i = 1; i < 300; i++) p.get(1).get(0).tupleN(1).reduce();
    assert.throws(() => unpickle(p.raw(0x65).stop().bytes()), new RegExp(`builds more than ${LIMITS.work} values`));
  });
});
