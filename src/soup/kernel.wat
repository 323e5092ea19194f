;; The averaging kernel in WebAssembly SIMD: the same float64 arithmetic as average.ts, in the same
;; order, two elements per instruction. Loads are written out in place: a helper function costs
;; a call per pair in the hot loops. Compiled to kernel.wasm by scripts/build-wasm.ts.
;; Every array is given by its byte address in the imported memory; n (elements) must be even.
;; Half-precision inputs are widened block by block into float32 (exactly, as dtype.ts decodes them),
;; and outputs are rounded to nearest even from the float32 of each mean, as dtype.ts encodes them.
(module
  (memory (import "env" "memory") 1)

  ;; sums (=|+=) ((a + b) + c) + d
  (func (export "add4") (param $s i32) (param $a i32) (param $b i32) (param $c i32) (param $d i32) (param $n i32) (param $first i32)
    (local $i i32) (local $o i32) (local $v v128)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $v
          (f64x2.add
            (f64x2.add
              (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $a) (local.get $o)))) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $b) (local.get $o)))))
              (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $c) (local.get $o)))))
            (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $d) (local.get $o))))))
        (local.set $o (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3))))
        (if (i32.eqz (local.get $first))
          (then (local.set $v (f64x2.add (v128.load (local.get $o)) (local.get $v)))))
        (v128.store (local.get $o) (local.get $v))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n))))))

  ;; sums (=|+=) a + b
  (func (export "add2") (param $s i32) (param $a i32) (param $b i32) (param $n i32) (param $first i32)
    (local $i i32) (local $o i32) (local $v v128)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $o (i32.shl (local.get $i) (i32.const 2)))
        (local.set $v (f64x2.add (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $a) (local.get $o)))) (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $b) (local.get $o))))))
        (local.set $o (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3))))
        (if (i32.eqz (local.get $first))
          (then (local.set $v (f64x2.add (v128.load (local.get $o)) (local.get $v)))))
        (v128.store (local.get $o) (local.get $v))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n))))))

  ;; sums (=|+=) a
  (func (export "add1") (param $s i32) (param $a i32) (param $n i32) (param $first i32)
    (local $i i32) (local $o i32) (local $v v128)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (f64x2.promote_low_f32x4 (v128.load64_zero (i32.add (local.get $a) (i32.shl (local.get $i) (i32.const 2))))))
        (local.set $o (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3))))
        (if (i32.eqz (local.get $first))
          (then (local.set $v (f64x2.add (v128.load (local.get $o)) (local.get $v)))))
        (v128.store (local.get $o) (local.get $v))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n))))))

  ;; Where $exact is set the divisor is a power of two and the quotient is taken as a product with its
;; reciprocal: the same correctly rounded value of the same real number, at a fraction of a division's cost.
;; out = float32(sums / divisor); returns 1 if any quotient is NaN or infinite (v - v != 0). A NaN
;; quotient is stored as the positive quiet NaN, as average.ts stores it: which NaN an addition of two
;; NaNs passes on depends on operand order, which V8 may swap, so only a canonical NaN is reproducible.
  (func (export "finish") (param $s i32) (param $out i32) (param $n i32) (param $divisor f64) (param $exact i32) (result i32)
    (local $i i32) (local $v v128) (local $d v128) (local $bad v128)
    (local.set $d (f64x2.splat (if (result f64) (local.get $exact) (then (f64.div (f64.const 1) (local.get $divisor))) (else (local.get $divisor)))))
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (if (result v128) (local.get $exact) (then (f64x2.mul (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))) (else (f64x2.div (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d)))))
        (local.set $bad (v128.or (local.get $bad) (f64x2.ne (f64x2.sub (local.get $v) (local.get $v)) (f64x2.splat (f64.const 0)))))
        (local.set $v (v128.bitselect (v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000) (local.get $v) (f64x2.ne (local.get $v) (local.get $v))))
        (v128.store64_lane 0 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (f32x4.demote_f64x2_zero (local.get $v)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n)))))
    (v128.any_true (local.get $bad)))

  ;; dst[0..n) = float32 of bfloat16 src: the bits shifted into the top half. Eight per step, so up
  ;; to 7 elements past n are read and written (the caller's blocks leave room).
  (func (export "widen_bf16") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $v v128)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (v128.load (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1)))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (i32x4.shl (i32x4.extend_low_i16x8_u (local.get $v)) (i32.const 16)))
        (v128.store offset=16 (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2))) (i32x4.shl (i32x4.extend_high_i16x8_u (local.get $v)) (i32.const 16)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 8))) (local.get $n))))))

  ;; dst[0..n) = float32 of IEEE half src, four per step (up to 3 past n): exponent rebiased,
  ;; subnormals normalised by one float subtraction (exact), infinities kept, and every NaN as
  ;; 0x7fc00000, the JS decoder's NaN. Written out in place: a call per step costs a third.
  (func (export "widen_f16") (param $src i32) (param $dst i32) (param $n i32)
    (local $i i32) (local $h v128) (local $o v128) (local $e v128) (local $em v128)
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $h (i32x4.extend_low_i16x8_u (v128.load64_zero (i32.add (local.get $src) (i32.shl (local.get $i) (i32.const 1))))))
        (local.set $em (v128.and (local.get $h) (i32x4.splat (i32.const 0x7fff))))
        (local.set $o (i32x4.shl (local.get $em) (i32.const 13)))
        (local.set $e (v128.and (local.get $o) (i32x4.splat (i32.const 0x0f800000))))
        (local.set $o (i32x4.add (local.get $o) (i32x4.splat (i32.const 0x38000000))))
        ;; infinity: the exponent goes on to 0xff
        (local.set $o (i32x4.add (local.get $o) (v128.and (i32x4.eq (local.get $e) (i32x4.splat (i32.const 0x0f800000))) (i32x4.splat (i32.const 0x38000000)))))
        ;; zero and subnormals: (2^-14 + m 2^-24) - 2^-14
        (local.set $o
          (v128.bitselect
            (f32x4.sub (i32x4.add (local.get $o) (i32x4.splat (i32.const 0x00800000))) (i32x4.splat (i32.const 0x38800000)))
            (local.get $o)
            (i32x4.eq (local.get $e) (v128.const i32x4 0 0 0 0))))
        (local.set $o (v128.or (local.get $o) (i32x4.shl (v128.and (local.get $h) (i32x4.splat (i32.const 0x8000))) (i32.const 16))))
        (v128.store (i32.add (local.get $dst) (i32.shl (local.get $i) (i32.const 2)))
          (v128.bitselect (i32x4.splat (i32.const 0x7fc00000)) (local.get $o) (i32x4.gt_u (local.get $em) (i32x4.splat (i32.const 0x7c00)))))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $n))))))

  ;; out = bfloat16(float32(sums / divisor)), four per step (up to 2 past an n of 4k + 2, which the
  ;; caller's next block overwrites); returns 1 if any quotient is NaN or infinite, as finish does.
  (func (export "finish_bf16") (param $s i32) (param $out i32) (param $n i32) (param $divisor f64) (param $exact i32) (result i32)
    (local $i i32) (local $v v128) (local $w v128) (local $d v128) (local $bad v128) (local $x v128)
    (local.set $d (f64x2.splat (if (result f64) (local.get $exact) (then (f64.div (f64.const 1) (local.get $divisor))) (else (local.get $divisor)))))
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (if (result v128) (local.get $exact) (then (f64x2.mul (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))) (else (f64x2.div (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d)))))
        (local.set $w (select (result v128)
          (if (result v128) (local.get $exact) (then (f64x2.mul (v128.load offset=16 (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))) (else (f64x2.div (v128.load offset=16 (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))))
          (v128.const i64x2 0 0)
          (i32.lt_u (i32.add (local.get $i) (i32.const 2)) (local.get $n))))
        (local.set $bad (v128.or (local.get $bad) (v128.or
          (f64x2.ne (f64x2.sub (local.get $v) (local.get $v)) (f64x2.splat (f64.const 0)))
          (f64x2.ne (f64x2.sub (local.get $w) (local.get $w)) (f64x2.splat (f64.const 0))))))
        (local.set $x (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (v128.bitselect (v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000) (local.get $v) (f64x2.ne (local.get $v) (local.get $v))))
          (f32x4.demote_f64x2_zero (v128.bitselect (v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000) (local.get $w) (f64x2.ne (local.get $w) (local.get $w))))))
        ;; round to nearest even; NaN keeps its top bits with the quiet bit set
        (local.set $x
          (v128.bitselect
            (v128.or (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 0x40)))
            (i32x4.shr_u
              (i32x4.add (local.get $x) (i32x4.add (i32x4.splat (i32.const 0x7fff)) (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 1)))))
              (i32.const 16))
            (i32x4.gt_u (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))) (i32x4.splat (i32.const 0x7f800000)))))
        (v128.store64_lane 0 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1))) (i16x8.narrow_i32x4_u (local.get $x) (local.get $x)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $n)))))
    (v128.any_true (local.get $bad)))

  ;; out = IEEE half(float32(sums / divisor)), four per step like finish_bf16, rounded as f32ToF16Bits:
  ;; normals by integer rounding of the low 13 bits, subnormals by a float addition of 0.5 (which
  ;; rounds at 2^-24), overflow to infinity, NaN as 0x7e00, the sign kept throughout.
  (func (export "finish_f16") (param $s i32) (param $out i32) (param $n i32) (param $divisor f64) (param $exact i32) (result i32)
    (local $i i32) (local $v v128) (local $w v128) (local $d v128) (local $bad v128) (local $x v128) (local $a v128) (local $r v128)
    (local.set $d (f64x2.splat (if (result f64) (local.get $exact) (then (f64.div (f64.const 1) (local.get $divisor))) (else (local.get $divisor)))))
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (if (result v128) (local.get $exact) (then (f64x2.mul (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))) (else (f64x2.div (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d)))))
        (local.set $w (select (result v128)
          (if (result v128) (local.get $exact) (then (f64x2.mul (v128.load offset=16 (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))) (else (f64x2.div (v128.load offset=16 (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d))))
          (v128.const i64x2 0 0)
          (i32.lt_u (i32.add (local.get $i) (i32.const 2)) (local.get $n))))
        (local.set $bad (v128.or (local.get $bad) (v128.or
          (f64x2.ne (f64x2.sub (local.get $v) (local.get $v)) (f64x2.splat (f64.const 0)))
          (f64x2.ne (f64x2.sub (local.get $w) (local.get $w)) (f64x2.splat (f64.const 0))))))
        (local.set $x (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
          (f32x4.demote_f64x2_zero (v128.bitselect (v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000) (local.get $v) (f64x2.ne (local.get $v) (local.get $v))))
          (f32x4.demote_f64x2_zero (v128.bitselect (v128.const i64x2 0x7ff8000000000000 0x7ff8000000000000) (local.get $w) (f64x2.ne (local.get $w) (local.get $w))))))
        (local.set $a (v128.and (local.get $x) (i32x4.splat (i32.const 0x7fffffff))))
        (local.set $r
          (i32x4.sub
            (i32x4.shr_u
              (i32x4.add (local.get $a) (i32x4.add (i32x4.splat (i32.const 0xfff)) (v128.and (i32x4.shr_u (local.get $a) (i32.const 13)) (i32x4.splat (i32.const 1)))))
              (i32.const 13))
            (i32x4.splat (i32.const 0x1c000))))
        (local.set $r
          (v128.bitselect
            (i32x4.sub (f32x4.add (local.get $a) (i32x4.splat (i32.const 0x3f000000))) (i32x4.splat (i32.const 0x3f000000)))
            (local.get $r)
            (i32x4.lt_u (local.get $a) (i32x4.splat (i32.const 0x38800000)))))
        (local.set $r (v128.bitselect (i32x4.splat (i32.const 0x7c00)) (local.get $r) (i32x4.ge_u (local.get $a) (i32x4.splat (i32.const 0x47800000)))))
        (local.set $r (v128.bitselect (i32x4.splat (i32.const 0x7e00)) (local.get $r) (i32x4.gt_u (local.get $a) (i32x4.splat (i32.const 0x7f800000)))))
        (local.set $r (v128.or (local.get $r) (v128.and (i32x4.shr_u (local.get $x) (i32.const 16)) (i32x4.splat (i32.const 0x8000)))))
        (v128.store64_lane 0 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 1))) (i16x8.narrow_i32x4_u (local.get $r) (local.get $r)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 4))) (local.get $n)))))
    (v128.any_true (local.get $bad)))
)
