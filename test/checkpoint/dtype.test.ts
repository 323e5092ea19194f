import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bf16BitsToF32, decodeFloats, encodeFloats, f16BitsToF32, f32ToBf16Bits, f32ToF16Bits, parseFloatDType } from '../../src/checkpoint/dtype.js';

describe('float16', () => {
  const known: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.5, 0x3800],
    [65504, 0x7bff],
    [2 ** -14, 0x0400],
    [2 ** -24, 0x0001],
    [0.0999755859375, 0x2e66],
    [Infinity, 0x7c00],
    [-Infinity, 0xfc00],
  ];

  it('decodes known half values exactly', () => {
    for (const [value, bits] of known) assert.equal(f16BitsToF32(bits), value, `bits 0x${bits.toString(16)}`);
    assert.ok(Number.isNaN(f16BitsToF32(0x7e00)));
  });

  it('encodes known values exactly', () => {
    for (const [value, bits] of known) assert.equal(f32ToF16Bits(value), bits, `value ${value}`);
    assert.equal(f32ToF16Bits(NaN) & 0x7c00, 0x7c00);
    assert.notEqual(f32ToF16Bits(NaN) & 0x3ff, 0);
  });

  it('rounds to nearest, ties to even, like numpy', () => {
    assert.equal(f32ToF16Bits(0.1), 0x2e66);
    assert.equal(f32ToF16Bits(2049), 0x6800, '2049 is halfway between 2048 and 2050: even is 2048');
    assert.equal(f32ToF16Bits(2051), 0x6802, '2051 is halfway between 2050 and 2052: even is 2052');
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(65520), 0x7c00, 'halfway to 65536 overflows to infinity');
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000, 'half the smallest subnormal ties to zero');
    assert.equal(f32ToF16Bits(1.5 * 2 ** -24), 0x0002, '1.5 ulp ties to even 2 ulp');
    assert.equal(f32ToF16Bits(2 ** -30), 0x0000);
  });

  it('round-trips every finite half value', () => {
    for (let bits = 0; bits < 0x10000; bits++) {
      if ((bits & 0x7c00) === 0x7c00) continue;
      assert.equal(f32ToF16Bits(f16BitsToF32(bits)), bits === 0x8000 ? 0x8000 : bits);
    }
  });
});

describe('bfloat16', () => {
  it('decodes and encodes known values exactly', () => {
    assert.equal(bf16BitsToF32(0x3f80), 1);
    assert.equal(bf16BitsToF32(0x4049), 3.140625);
    assert.equal(bf16BitsToF32(0xc000), -2);
    assert.equal(f32ToBf16Bits(1), 0x3f80);
    assert.equal(f32ToBf16Bits(3.140625), 0x4049);
    assert.equal(f32ToBf16Bits(-Infinity), 0xff80);
  });

  it('rounds to nearest, ties to even', () => {
    assert.equal(f32ToBf16Bits(1 + 2 ** -8), 0x3f80);
    assert.equal(f32ToBf16Bits(1 + 3 * 2 ** -8), 0x3f82);
    assert.equal(f32ToBf16Bits(Math.PI), 0x4049);
  });

  it('keeps NaN a NaN', () => {
    assert.ok(Number.isNaN(bf16BitsToF32(f32ToBf16Bits(NaN))));
  });
});

describe('decodeFloats and encodeFloats', () => {
  it('round-trip each float dtype', () => {
    const values = [0, 1, -2.5, 0.125, 1024];
    for (const dtype of ['F64', 'F32', 'F16', 'BF16'] as const) {
      assert.deepEqual([...decodeFloats(encodeFloats(values, dtype), dtype)], values, dtype);
    }
  });

  it('reads views that do not start on an element boundary', () => {
    const bytes = new Uint8Array(9);
    bytes.set(new Uint8Array(new Float64Array([3.5]).buffer), 1);
    assert.deepEqual([...decodeFloats(bytes.subarray(1), 'F64')], [3.5]);
  });
});

describe('parseFloatDType', () => {
  it('accepts the usual spellings and refuses others', () => {
    assert.equal(parseFloatDType('bf16'), 'BF16');
    assert.equal(parseFloatDType('float16'), 'F16');
    assert.equal(parseFloatDType('F32'), 'F32');
    assert.equal(parseFloatDType('int8'), undefined);
  });
});
