;; The averaging kernel in WebAssembly SIMD: the same float64 arithmetic as average.ts, in the same
;; order, two elements per instruction. Loads are written out in place: a helper function costs
;; a call per pair in the hot loops. Compiled to kernel.wasm by scripts/build-wasm.ts.
;; Every array is given by its byte address in the imported memory; n (elements) must be even.
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

  ;; out = float32(sums / divisor); returns 1 if any quotient is NaN or infinite (v - v != 0)
  (func (export "finish") (param $s i32) (param $out i32) (param $n i32) (param $divisor f64) (result i32)
    (local $i i32) (local $v v128) (local $d v128) (local $bad v128)
    (local.set $d (f64x2.splat (local.get $divisor)))
    (block $done
      (br_if $done (i32.eqz (local.get $n)))
      (loop $next
        (local.set $v (f64x2.div (v128.load (i32.add (local.get $s) (i32.shl (local.get $i) (i32.const 3)))) (local.get $d)))
        (local.set $bad (v128.or (local.get $bad) (f64x2.ne (f64x2.sub (local.get $v) (local.get $v)) (f64x2.splat (f64.const 0)))))
        (v128.store64_lane 0 (i32.add (local.get $out) (i32.shl (local.get $i) (i32.const 2))) (f32x4.demote_f64x2_zero (local.get $v)))
        (br_if $next (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 2))) (local.get $n)))))
    (v128.any_true (local.get $bad)))
)
