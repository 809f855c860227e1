;; Pillow's fixed-point resampling passes (ImagingResampleHorizontal_8bpc and
;; ImagingResampleVertical_8bpc, 3 channels) with WebAssembly SIMD, for any
;; filter: the coefficients come precomputed from pilResample.ts.
;; Same integer arithmetic as pilResample.ts: each output sums uint8 * int32
;; coefficient (exact in i32), starts from 1 << 21, shifts right by 22 and
;; clamps to 0..255 (the two saturating narrows do Pillow's clip8).
;; Buffers live in the imported memory; reads and writes may run up to 16 bytes
;; past a row or buffer end, so callers leave 16 bytes of padding after each.
;; Regenerate resampleWasm.ts after editing: node tools/build-wasm.mjs
(module
  (import "env" "memory" (memory 1))

  ;; Vertical pass over rows of `W` bytes: output row yy reads bounds[2yy+1]
  ;; source rows from bounds[2yy], weighted by kk[yy*ksize ...]. 16 bytes a step.
  (func (export "vertical")
    (param $src i32) (param $W i32) (param $outH i32) (param $bounds i32)
    (param $kk i32) (param $ksize i32) (param $dst i32)
    (local $yy i32) (local $n i32) (local $kb i32) (local $i i32) (local $y i32)
    (local $row i32) (local $p i32) (local $o i32)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local $v v128) (local $k v128) (local $lo v128) (local $hi v128)
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $yy) (local.get $outH)))
        (local.set $row (i32.add (local.get $src)
          (i32.mul (i32.load (i32.add (local.get $bounds) (i32.shl (local.get $yy) (i32.const 3)))) (local.get $W))))
        (local.set $n (i32.load offset=4 (i32.add (local.get $bounds) (i32.shl (local.get $yy) (i32.const 3)))))
        (local.set $kb (i32.add (local.get $kk) (i32.shl (i32.mul (local.get $yy) (local.get $ksize)) (i32.const 2))))
        (local.set $o (i32.add (local.get $dst) (i32.mul (local.get $yy) (local.get $W))))
        (local.set $i (i32.const 0))
        (block $cols_done
          (loop $cols
            (br_if $cols_done (i32.ge_u (local.get $i) (local.get $W)))
            (local.set $a0 (v128.const i32x4 2097152 2097152 2097152 2097152))
            (local.set $a1 (local.get $a0))
            (local.set $a2 (local.get $a0))
            (local.set $a3 (local.get $a0))
            (local.set $p (i32.add (local.get $row) (local.get $i)))
            (local.set $y (i32.const 0))
            (block $taps_done
              (loop $taps
                (br_if $taps_done (i32.ge_u (local.get $y) (local.get $n)))
                (local.set $v (v128.load (local.get $p)))
                (local.set $k (i32x4.splat (i32.load (i32.add (local.get $kb) (i32.shl (local.get $y) (i32.const 2))))))
                (local.set $lo (i16x8.extend_low_i8x16_u (local.get $v)))
                (local.set $hi (i16x8.extend_high_i8x16_u (local.get $v)))
                (local.set $a0 (i32x4.add (local.get $a0) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $lo)) (local.get $k))))
                (local.set $a1 (i32x4.add (local.get $a1) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $lo)) (local.get $k))))
                (local.set $a2 (i32x4.add (local.get $a2) (i32x4.mul (i32x4.extend_low_i16x8_u (local.get $hi)) (local.get $k))))
                (local.set $a3 (i32x4.add (local.get $a3) (i32x4.mul (i32x4.extend_high_i16x8_u (local.get $hi)) (local.get $k))))
                (local.set $p (i32.add (local.get $p) (local.get $W)))
                (local.set $y (i32.add (local.get $y) (i32.const 1)))
                (br $taps)))
            (v128.store (i32.add (local.get $o) (local.get $i))
              (i8x16.narrow_i16x8_u
                (i16x8.narrow_i32x4_s
                  (i32x4.shr_s (local.get $a0) (i32.const 22))
                  (i32x4.shr_s (local.get $a1) (i32.const 22)))
                (i16x8.narrow_i32x4_s
                  (i32x4.shr_s (local.get $a2) (i32.const 22))
                  (i32x4.shr_s (local.get $a3) (i32.const 22)))))
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (br $cols)))
        (local.set $yy (i32.add (local.get $yy) (i32.const 1)))
        (br $rows))))

  ;; Horizontal pass over `rows` rows of RGB pixels (`inRow` bytes in, outW
  ;; pixels out): output pixel xx reads bounds[2xx+1] pixels from bounds[2xx],
  ;; weighted by kk[xx*ksize ...]. One pixel's R, G, B (and a spare lane) a step.
  (func (export "horizontal")
    (param $src i32) (param $inRow i32) (param $rows i32) (param $outW i32)
    (param $bounds i32) (param $kk i32) (param $ksize i32) (param $dst i32)
    (local $yy i32) (local $xx i32) (local $row i32) (local $o i32) (local $b i32)
    (local $p i32) (local $n i32) (local $kb i32) (local $x i32) (local $acc v128)
    (block $rows_done
      (loop $rows
        (br_if $rows_done (i32.ge_u (local.get $yy) (local.get $rows)))
        (local.set $row (i32.add (local.get $src) (i32.mul (local.get $yy) (local.get $inRow))))
        (local.set $o (i32.add (local.get $dst) (i32.mul (local.get $yy) (i32.mul (local.get $outW) (i32.const 3)))))
        (local.set $xx (i32.const 0))
        (block $px_done
          (loop $px
            (br_if $px_done (i32.ge_u (local.get $xx) (local.get $outW)))
            (local.set $b (i32.add (local.get $bounds) (i32.shl (local.get $xx) (i32.const 3))))
            (local.set $p (i32.add (local.get $row) (i32.mul (i32.load (local.get $b)) (i32.const 3))))
            (local.set $n (i32.load offset=4 (local.get $b)))
            (local.set $kb (i32.add (local.get $kk) (i32.shl (i32.mul (local.get $xx) (local.get $ksize)) (i32.const 2))))
            (local.set $acc (v128.const i32x4 2097152 2097152 2097152 2097152))
            (local.set $x (i32.const 0))
            (block $taps_done
              (loop $taps
                (br_if $taps_done (i32.ge_u (local.get $x) (local.get $n)))
                (local.set $acc (i32x4.add (local.get $acc)
                  (i32x4.mul
                    (i32x4.extend_low_i16x8_u (v128.load8x8_u (local.get $p)))
                    (i32x4.splat (i32.load (local.get $kb))))))
                (local.set $p (i32.add (local.get $p) (i32.const 3)))
                (local.set $kb (i32.add (local.get $kb) (i32.const 4)))
                (local.set $x (i32.add (local.get $x) (i32.const 1)))
                (br $taps)))
            ;; 4 bytes written; the 4th is overwritten by the next pixel
            (i32.store (local.get $o)
              (i32x4.extract_lane 0
                (i8x16.narrow_i16x8_u
                  (i16x8.narrow_i32x4_s (i32x4.shr_s (local.get $acc) (i32.const 22)) (local.get $acc))
                  (local.get $acc))))
            (local.set $o (i32.add (local.get $o) (i32.const 3)))
            (local.set $xx (i32.add (local.get $xx) (i32.const 1)))
            (br $px)))
        (local.set $yy (i32.add (local.get $yy) (i32.const 1)))
        (br $rows))))
)
