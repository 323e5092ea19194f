/**
 * The text of the averaging kernel in WebAssembly SIMD, which scripts/build.ts assembles into
 * kernel.wasm. It is written as a template because its hot loops must be written out in place: a
 * call per step costs more than the step, and the widening of each input dtype and the rounding to
 * each output dtype appear in several loops.
 *
 * The kernel does the float64 arithmetic of average.ts in the same order, fused into one pass: eight
 * elements at a time, every input is loaded, widened to float64 in registers and added into its
 * group's sum (average.ts's add4/add2/add1: ((a + b) + c) + d), the group sums are added into the
 * running sum, and the mean is rounded to float32, then to the output dtype, and stored. Nothing goes
 * back to memory in between. Pass by pass, with the float64 sums in memory, the kernel before this
 * one took 1.5-1.85x as long (bench/kernel.ts's case, 4 inputs: bf16 1.85 ns per element against
 * 1.0, f16 4.2 against 2.5, float32 1.14 against 0.76). Half inputs first try a float32 sum, which
 * gives the same bits wherever it is exact, as it is for nearly all real weights (FLOAT32_EXACT):
 * f16 2.5 -> 1.66 ns, bf16 1.04 -> 0.95 ns; bf16 gains little because the instructions per element,
 * not the float64 conversions, bound it.
 *
 * Half inputs are widened exactly. bfloat16: the bits shifted up. IEEE half: exponent and mantissa
 * moved into float32's places are the value times 2^-112, subnormals included, so one multiplication
 * by 2^112 gives the value; the sign goes on after, and infinity and NaN get float32's all-ones
 * exponent. A NaN input gives a NaN mean whatever its payload, and every NaN mean is stored as the
 * output dtype's positive quiet NaN, as average.ts stores it: which NaN an addition of two NaNs passes
 * on depends on operand order, which V8 may swap, so only a canonical NaN is reproducible.
 */

/** How the kernel codes dtypes, in its input table and for its output. */
export const DTYPE_CODES = { F32: 0, BF16: 1, F16: 2 } as const;

type Code = (typeof DTYPE_CODES)[keyof typeof DTYPE_CODES];

const ZERO = '(v128.const i32x4 0 0 0 0)';
const HIGH_PAIR = 'i8x16.shuffle 8 9 10 11 12 13 14 15 8 9 10 11 12 13 14 15';

/** Float32 lanes of IEEE half bits held in the low 16 bits of i32 lanes `$halves`, into `$into`. */
function halfToFloat(halves: string, into: string): string {
  return `
    (local.set $m (v128.and (i32x4.shl (local.get ${halves}) (i32.const 13)) (i32x4.splat (i32.const 0x0fffe000))))
    (local.set ${into}
      (v128.or
        (v128.or
          (f32x4.mul (local.get $m) (i32x4.splat (i32.const 0x77800000)))
          (v128.and (i32x4.shl (local.get ${halves}) (i32.const 16)) (i32x4.splat (i32.const 0x80000000))))
        (v128.and (i32x4.gt_s (local.get $m) (i32x4.splat (i32.const 0x0f7fffff))) (i32x4.splat (i32.const 0x7f800000)))))`;
}

/** Eight elements of the input at byte address `$at`, element `$i`, widened to float64 into $x0-$x3. */
function widen(code: Code): string {
  if (code === DTYPE_CODES.F32) {
    return `
    (local.set $at (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 2))))
    (local.set $x0 (f64x2.promote_low_f32x4 (v128.load64_zero (local.get $at))))
    (local.set $x1 (f64x2.promote_low_f32x4 (v128.load64_zero offset=8 (local.get $at))))
    (local.set $x2 (f64x2.promote_low_f32x4 (v128.load64_zero offset=16 (local.get $at))))
    (local.set $x3 (f64x2.promote_low_f32x4 (v128.load64_zero offset=24 (local.get $at))))`;
  }
  return `${halvesToFloat32(code)}
    (local.set $x0 (f64x2.promote_low_f32x4 (local.get $lo)))
    (local.set $x1 (f64x2.promote_low_f32x4 (${HIGH_PAIR} (local.get $lo) (local.get $lo))))
    (local.set $x2 (f64x2.promote_low_f32x4 (local.get $hi)))
    (local.set $x3 (f64x2.promote_low_f32x4 (${HIGH_PAIR} (local.get $hi) (local.get $hi))))`;
}

/** Eight half elements of the input at byte address `$at`, element `$i`, as float32 lanes into $lo and $hi (exactly). */
function halvesToFloat32(code: Code): string {
  const load = '(local.set $v (v128.load (i32.add (local.get $at) (i32.shl (local.get $i) (i32.const 1)))))';
  const toFloat =
    code === DTYPE_CODES.BF16
      ? // each value into the top half of a float32 lane: one unpack with zeros
        `
    (local.set $lo (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 ${ZERO} (local.get $v)))
    (local.set $hi (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 ${ZERO} (local.get $v)))`
      : `
    (local.set $lo (i32x4.extend_low_i16x8_u (local.get $v)))${halfToFloat('$lo', '$lo')}
    (local.set $hi (i32x4.extend_high_i16x8_u (local.get $v)))${halfToFloat('$hi', '$hi')}`;
  return `
    ${load}${toFloat}`;
}

/** `to` = `from` (four registers); `to` += `from` with `add` true, or where the condition `add` holds. */
function gather(to: string, from: string, add: boolean | string = false): string {
  const lanes = [0, 1, 2, 3];
  const set = lanes.map((k) => `(local.set $${to}${k} (local.get $${from}${k}))`).join(' ');
  const sum = lanes.map((k) => `(local.set $${to}${k} (f64x2.add (local.get $${to}${k}) (local.get $${from}${k})))`).join(' ');
  if (typeof add === 'string') return `\n    (if ${add} (then ${sum}) (else ${set}))`;
  return `\n    ${add ? sum : set}`;
}

/** Rounds float32 lanes `$f` to bfloat16 or IEEE half bits (in the low 16 bits), as dtype.ts encodes. */
function roundHalf(code: Code, f: string): string {
  if (code === DTYPE_CODES.BF16) {
    // to nearest even on the low 16 bits; NaN as 0x7fc0
    return `
    (local.set ${f}
      (v128.bitselect
        (i32x4.splat (i32.const 0x7fc0))
        (i32x4.shr_u (i32x4.add (local.get ${f}) (i32x4.add (i32x4.splat (i32.const 0x7fff)) (v128.and (i32x4.shr_u (local.get ${f}) (i32.const 16)) (i32x4.splat (i32.const 1))))) (i32.const 16))
        (i32x4.gt_s (v128.and (local.get ${f}) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000)))))`;
  }
  // as f32ToF16Bits: normals by integer rounding of the low 13 bits, subnormals by a float addition
  // of 0.5 (which rounds at 2^-24), overflow to infinity, the sign put back, NaN as 0x7e00
  return `
    (local.set $a (v128.and (local.get ${f}) (i32x4.splat (i32.const 0x7fffffff))))
    (local.set $r (i32x4.sub (i32x4.shr_u (i32x4.add (local.get $a) (i32x4.add (i32x4.splat (i32.const 0xfff)) (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (i32x4.splat (i32.const 1))))) (i32.const 13)) (i32x4.splat (i32.const 0x1c000))))
    (local.set $r (v128.bitselect (i32x4.sub (f32x4.add (local.get $a) (i32x4.splat (i32.const 0x3f000000))) (i32x4.splat (i32.const 0x3f000000))) (local.get $r) (i32x4.lt_s (local.get $a) (i32x4.splat (i32.const 0x38800000)))))
    (local.set $r (v128.bitselect (i32x4.splat (i32.const 0x7c00)) (local.get $r) (i32x4.gt_s (local.get $a) (i32x4.splat (i32.const 0x477fffff)))))
    (local.set $r (v128.or (local.get $r) (v128.and (i32x4.shr_u (local.get ${f}) (i32.const 16)) (i32x4.splat (i32.const 0x8000)))))
    (local.set ${f} (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (local.get $r) (i32x4.gt_s (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))`;
}

/** The means of the running sums $s0-$s3, rounded to float32 lanes in $lo and $hi. */
const MEAN_OF_SUMS = `
    (if (local.get $exact)
      (then ${[0, 1, 2, 3].map((k) => `(local.set $s${k} (f64x2.mul (local.get $s${k}) (local.get $d)))`).join(' ')})
      (else ${[0, 1, 2, 3].map((k) => `(local.set $s${k} (f64x2.div (local.get $s${k}) (local.get $d)))`).join(' ')}))
    (local.set $lo (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero (local.get $s0)) (f32x4.demote_f64x2_zero (local.get $s1))))
    (local.set $hi (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23 (f32x4.demote_f64x2_zero (local.get $s2)) (f32x4.demote_f64x2_zero (local.get $s3))))`;

/** The float32 means in $lo and $hi, rounded to the output dtype and stored at element $i of $out; non-finite ones noted in $bad. */
const STORE = `
    ;; The inputs are at most float32, so a float64 mean is finite exactly where its float32 is.
    (local.set $bad (v128.or (local.get $bad) (v128.or
      (f32x4.ne (f32x4.sub (local.get $lo) (local.get $lo)) ${ZERO})
      (f32x4.ne (f32x4.sub (local.get $hi) (local.get $hi)) ${ZERO}))))
    (if (i32.eqz (local.get $outDtype))
      (then
        (local.set $at (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))))
        (v128.store (local.get $at) (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $lo) (f32x4.ne (local.get $lo) (local.get $lo))))
        (v128.store offset=16 (local.get $at) (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $hi) (f32x4.ne (local.get $hi) (local.get $hi)))))
      (else
        (if (i32.eq (local.get $outDtype) (i32.const ${DTYPE_CODES.BF16}))
          (then ${roundHalf(DTYPE_CODES.BF16, '$lo')}${roundHalf(DTYPE_CODES.BF16, '$hi')})
          (else ${roundHalf(DTYPE_CODES.F16, '$lo')}${roundHalf(DTYPE_CODES.F16, '$hi')}))
        (v128.store (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1))) (i16x8.narrow_i32x4_u (local.get $lo) (local.get $hi)))))`;

/**
 * Every mean function has these parameters and locals, and loops over elements [$from, $n) eight at a
 * time ($from a multiple of eight: two threads share a chunk by pieces).
 */
function meanFunction(name: string, params: string, body: string, prologue = ''): string {
  return `
  (func (export "${name}") (param $table i32) ${params} (param $out i32) (param $outDtype i32) (param $from i32) (param $n i32) (param $divisor f64) (param $exact i32) (result i32)
    (local $i i32) (local $p i32) (local $left i32) (local $at i32) (local $dtype i32) (local $flags i32)
    (local $v v128) (local $lo v128) (local $hi v128) (local $m v128) (local $a v128) (local $r v128)
    (local $x0 v128) (local $x1 v128) (local $x2 v128) (local $x3 v128)
    (local $g0 v128) (local $g1 v128) (local $g2 v128) (local $g3 v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local $d v128) (local $bad v128)
    (local $inputs i32) (local $tryFloat32 i32) (local $spread v128) (local $top v128) (local $bottom v128) (local $d32 v128) (local $emax v128) (local $emin v128) (local $t v128)
    (local.set $d (f64x2.splat (if (result f64) (local.get $exact) (then (f64.div (f64.const 1) (local.get $divisor))) (else (local.get $divisor)))))${prologue}
    (local.set $i (local.get $from))
    (block $done
      (br_if $done (i32.ge_u (local.get $from) (local.get $n)))
      (loop $elements${body}
        (br_if $elements (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 8))) (local.get $n)))))
    (v128.any_true (local.get $bad)))`;
}

/** Bytes of one input table entry: address, dtype, flags (i32 each). */
export const ENTRY_BYTES = 12;
/** Flags of a table entry, for the mixed-dtype function: where average.ts's groups start and end. */
export const STARTS_GROUP = 1;
export const ENDS_GROUP = 2;
export const FIRST_GROUP = 4;

/**
 * Inputs of mixed dtypes: one table entry per input, its dtype and group flags read at every step.
 * The general case, about 1.4x the time of the functions below.
 */
const MIXED = meanFunction(
  'mean',
  '(param $entries i32)',
  `
        (local.set $p (local.get $table))
        (local.set $left (local.get $entries))
        (loop $inputs
          (local.set $at (i32.load (local.get $p)))
          (local.set $dtype (i32.load offset=4 (local.get $p)))
          (local.set $flags (i32.load offset=8 (local.get $p)))
          (if (i32.eqz (local.get $dtype))
            (then ${widen(DTYPE_CODES.F32)})
            (else
              (if (i32.eq (local.get $dtype) (i32.const ${DTYPE_CODES.BF16}))
                (then ${widen(DTYPE_CODES.BF16)})
                (else ${widen(DTYPE_CODES.F16)}))))
          ${gather('g', 'x', `(i32.eqz (i32.and (local.get $flags) (i32.const ${STARTS_GROUP})))`)}
          (if (i32.and (local.get $flags) (i32.const ${ENDS_GROUP}))
            (then ${gather('s', 'g', `(i32.eqz (i32.and (local.get $flags) (i32.const ${FIRST_GROUP})))`)}))
          (local.set $p (i32.add (local.get $p) (i32.const ${ENTRY_BYTES})))
          (br_if $inputs (local.tee $left (i32.sub (local.get $left) (i32.const 1)))))${MEAN_OF_SUMS}${STORE}`,
);

/**
 * Inputs of one dtype, from the same table: groups of four (unrolled), then a pair, then a single, as
 * average.ts adds them, with no per-input branches. Half inputs first try the float32 sum (below).
 */
function sameDtype(name: string, code: Code): string {
  const input = (k: number) => `\n    (local.set $at (i32.load offset=${k * ENTRY_BYTES} (local.get $p)))${widen(code)}`;
  const notFirst = '(i32.ne (local.get $p) (local.get $table))';
  const inFloat64 = `
        (local.set $p (local.get $table))
        (local.set $left (local.get $quads))
        (block $noQuads
          (br_if $noQuads (i32.eqz (local.get $left)))
          (loop $quadLoop${input(0)}${gather('g', 'x')}${input(1)}${gather('g', 'x', true)}${input(2)}${gather('g', 'x', true)}${input(3)}${gather('g', 'x', true)}${gather('s', 'g', notFirst)}
            (local.set $p (i32.add (local.get $p) (i32.const ${4 * ENTRY_BYTES})))
            (br_if $quadLoop (local.tee $left (i32.sub (local.get $left) (i32.const 1))))))
        (if (local.get $pairs)
          (then ${input(0)}${gather('g', 'x')}${input(1)}${gather('g', 'x', true)}${gather('s', 'g', notFirst)}
            (local.set $p (i32.add (local.get $p) (i32.const ${2 * ENTRY_BYTES})))))
        (if (local.get $singles)
          (then ${input(0)}${gather('s', 'x', notFirst)}))${MEAN_OF_SUMS}`;
  const params = '(param $quads i32) (param $pairs i32) (param $singles i32)';
  if (code === DTYPE_CODES.F32) return meanFunction(name, params, `${inFloat64}${STORE}`);
  return meanFunction(name, params, `${float32WhenExact(code, inFloat64)}${STORE}`, float32Prologue(code));
}

/**
 * Half inputs whose sum float32 holds exactly. A half has a short significand (bfloat16 8 bits, IEEE
 * half 11), so when the exponents of the n values added at one element lie within 16 - c (bfloat16)
 * or 13 - c (half) of each other, c = ceil(log2 n), every partial sum fits float32's 24 bits: the
 * float32 sum is the float64 sum, in any order. The mean is then one rounding of the same quotient
 * either way: a division by 2^k is exact, and for other divisors rounding to float64 first and then to
 * float32 gives float32's rounding, as 53 >= 2 * 24 + 2 (Figueroa, "When is double rounding
 * innocuous?", 1995). So the bits are average.ts's, for less work: one pass widens, adds and checks
 * the exponents, and only when a lane of the eight fails does the float64 path run. Infinities and
 * NaN always fail, as does a bfloat16 so large that float32 could overflow where float64 does not,
 * and an IEEE half that is zero or subnormal (its cheap widening below holds for normal halves).
 * Real weights almost always pass: an ingredient's value rarely sits 2^11 times below another's.
 * Per dtype: where the exponent field sits, the widest spread for one input (c = 0), and the largest
 * and smallest exponent fields allowed.
 */
const FLOAT32_EXACT = {
  [DTYPE_CODES.BF16]: { exponentShift: 7, bits: 16, top: (c: string) => `(i32.sub (i32.const 254) ${c})`, bottom: 0 },
  [DTYPE_CODES.F16]: { exponentShift: 10, bits: 13, top: () => '(i32.const 30)', bottom: 1 },
} as const;

type HalfCode = typeof DTYPE_CODES.BF16 | typeof DTYPE_CODES.F16;

/** Sets up float32WhenExact's locals for a call: which exponents qualify, and the divisor in float32. */
function float32Prologue(code: HalfCode): string {
  const { bits, top, bottom } = FLOAT32_EXACT[code];
  const c = '(i32.sub (i32.const 32) (i32.clz (i32.sub (local.get $inputs) (i32.const 1))))';
  return `
    (local.set $inputs (i32.add (i32.add (i32.shl (local.get $quads) (i32.const 2)) (i32.shl (local.get $pairs) (i32.const 1))) (local.get $singles)))
    (local.set $tryFloat32 (i32.and
      (i32.ge_s (i32.sub (i32.const ${bits}) ${c}) (i32.const 0))
      (f64.eq (f64.promote_f32 (f32.demote_f64 (local.get $divisor))) (local.get $divisor))))
    (local.set $spread (i16x8.splat (i32.sub (i32.const ${bits}) ${c})))
    (local.set $top (i16x8.splat ${top(c)}))
    (local.set $bottom (i16x8.splat (i32.const ${bottom})))
    (local.set $d32 (f32x4.splat (f32.demote_f64 (f64x2.extract_lane 0 (local.get $d)))))`;
}

/**
 * Eight halves in $v as float32 lanes in $lo and $hi. IEEE half here only for normal halves, in
 * 16-bit lanes: the float32's top half is the sign, the exponent rebiased by 112 and the mantissa's
 * top 7 bits (an arithmetic shift keeps the sign, a mask clears its copies); its low half is the
 * mantissa's last 3 bits.
 */
function halvesToFloat32Fast(code: HalfCode): string {
  if (code === DTYPE_CODES.BF16) {
    return `
          (local.set $lo (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 ${ZERO} (local.get $v)))
          (local.set $hi (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 ${ZERO} (local.get $v)))`;
  }
  return `
          (local.set $m (i16x8.add (v128.and (i16x8.shr_s (local.get $v) (i32.const 3)) (i16x8.splat (i32.const 0x8fff))) (i16x8.splat (i32.const 0x3800))))
          (local.set $a (i16x8.shl (local.get $v) (i32.const 13)))
          (local.set $lo (i8x16.shuffle 0 1 16 17 2 3 18 19 4 5 20 21 6 7 22 23 (local.get $a) (local.get $m)))
          (local.set $hi (i8x16.shuffle 8 9 24 25 10 11 26 27 12 13 28 29 14 15 30 31 (local.get $a) (local.get $m)))`;
}

/** Eight elements' means into $lo and $hi: summed in float32 when exact (see FLOAT32_EXACT), else by `inFloat64`. */
function float32WhenExact(code: HalfCode, inFloat64: string): string {
  const { exponentShift } = FLOAT32_EXACT[code];
  // -0 + x is x for every x, -0 and +0 included, as a sum starting from the first input would be.
  const negativeZeros = '(v128.const i32x4 0x80000000 0x80000000 0x80000000 0x80000000)';
  return `
        (local.set $emax ${ZERO})
        (local.set $emin (v128.const i32x4 -1 -1 -1 -1))
        (local.set $g0 ${negativeZeros})
        (local.set $g1 ${negativeZeros})
        (if (local.get $tryFloat32)
          (then
            (local.set $p (local.get $table))
            (local.set $left (local.get $inputs))
            (loop $float32Inputs
              (local.set $v (v128.load (i32.add (i32.load (local.get $p)) (i32.shl (local.get $i) (i32.const 1)))))
              (local.set $t (v128.and (local.get $v) (i16x8.splat (i32.const 0x7fff))))
              (local.set $emax (i16x8.max_u (local.get $emax) (local.get $t)))
              (local.set $emin (i16x8.min_u (local.get $emin) (local.get $t)))${halvesToFloat32Fast(code)}
              (local.set $g0 (f32x4.add (local.get $g0) (local.get $lo)))
              (local.set $g1 (f32x4.add (local.get $g1) (local.get $hi)))
              (local.set $p (i32.add (local.get $p) (i32.const ${ENTRY_BYTES})))
              (br_if $float32Inputs (local.tee $left (i32.sub (local.get $left) (i32.const 1)))))))
        ;; The largest and smallest magnitudes have the largest and smallest exponents.
        (local.set $emax (i16x8.shr_u (local.get $emax) (i32.const ${exponentShift})))
        (local.set $emin (i16x8.shr_u (local.get $emin) (i32.const ${exponentShift})))
        (if (i32.and (local.get $tryFloat32) (i16x8.all_true (v128.and (v128.and
              (i16x8.le_u (i16x8.sub (local.get $emax) (local.get $emin)) (local.get $spread))
              (i16x8.le_u (local.get $emax) (local.get $top)))
              (i16x8.ge_u (local.get $emin) (local.get $bottom)))))
          (then
            (if (local.get $exact)
              (then (local.set $lo (f32x4.mul (local.get $g0) (local.get $d32))) (local.set $hi (f32x4.mul (local.get $g1) (local.get $d32))))
              (else (local.set $lo (f32x4.div (local.get $g0) (local.get $d32))) (local.set $hi (f32x4.div (local.get $g1) (local.get $d32))))))
          (else ${inFloat64}))`;
}

/** Pages of the largest memory a shared kernel may import (a shared memory declares its maximum): 4 GiB. */
const MAX_PAGES = 65536;

/** The whole module; `shared` for the one that imports a shared memory (for WasmKernel's helper thread). */
export function kernelSource(shared = false): string {
  return `;; Generated by src/soup/kernel/source.ts: edit that file, not this text.
(module
  (memory (import "env" "memory") 1${shared ? ` ${MAX_PAGES} shared` : ''})${MIXED}${sameDtype('mean_f32', DTYPE_CODES.F32)}${sameDtype('mean_bf16', DTYPE_CODES.BF16)}${sameDtype('mean_f16', DTYPE_CODES.F16)}
)
`;
}
