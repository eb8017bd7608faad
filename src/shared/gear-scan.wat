;; The FastCDC gear-hash scan of src/shared/chunking.ts, as WebAssembly.
;;
;; Why: the JavaScript loop runs at ~4 GB/s only once V8's optimizing tier
;; has compiled it, and in workerd that compile sometimes never lands: the
;; function then stays in a lower tier for the life of the isolate and chunks
;; at ~0.3 GB/s (docs/decisions/0012). WebAssembly's baseline compiler
;; (Liftoff) compiles this on the spot, so the speed no longer depends on a
;; background job.
;;
;; Why eight bytes per load: workerd appears to check every WebAssembly
;; memory access against the memory's size in code (Node's V8 relies on guard
;; pages; with --wasm-enforce-bounds-checks Node runs the byte loop as slowly
;; as workerd does), and a byte loop pays two checks per byte, the byte and
;; its gear entry. Loading eight bytes at once leaves about one: 2.1 -> 2.4
;; GB/s in Node with that flag, and 47 -> 39 ms per 90 MiB for the streaming
;; chunker in workerd (docs/decisions/0012). The eight steps are written out:
;; a loop over them ran no faster than the byte loop (2.0 against 2.7 GB/s
;; unrolled, Liftoff with enforced checks).
;;
;; Memory: bytes [0, 1024) hold the gear table (256 little-endian u32,
;; written by the host), the bytes to scan follow (GEAR_SCAN_DATA_OFFSET in
;; chunking.ts). Rebuild gear-scan.wasm with `npm run build:wasm`;
;; src/shared/chunking.test.ts checks that the two match.
(module
  (memory (export "memory") 17)
  (global $hash (export "hash") (mut i32) (i32.const 0))
  ;; Rolls bytes [i, end) into h (h = (h << 1) + gear[byte], mod 2^32) and
  ;; returns the index of the first byte after which (h & mask) == 0, or -1
  ;; with the final h in the exported global `hash`.
  (func (export "scan") (param $i i32) (param $end i32) (param $h i32) (param $mask i32) (result i32)
    (local $w i64)
    ;; Eight bytes at a time while eight remain; WebAssembly is little-endian,
    ;; so byte k of the word is bits 8k..8k+7.
    (block $words_done
      (loop $words
        (br_if $words_done (i32.gt_s (i32.add (local.get $i) (i32.const 8)) (local.get $end)))
        (local.set $w (i64.load (local.get $i)))
        ;; byte 0
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (local.get $w)) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (local.get $i))))
        ;; byte 1
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 8))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 1)))))
        ;; byte 2
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 16))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 2)))))
        ;; byte 3
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 24))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 3)))))
        ;; byte 4
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 32))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 4)))))
        ;; byte 5
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 40))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 5)))))
        ;; byte 6
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 48))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 6)))))
        ;; byte 7
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.and (i32.wrap_i64 (i64.shr_u (local.get $w) (i64.const 56))) (i32.const 255)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (i32.add (local.get $i) (i32.const 7)))))
        (local.set $i (i32.add (local.get $i) (i32.const 8)))
        (br $words)))
    ;; The last 0-7 bytes, one at a time.
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $end)))
        (local.set $h
          (i32.add
            (i32.shl (local.get $h) (i32.const 1))
            (i32.load (i32.shl (i32.load8_u (local.get $i)) (i32.const 2)))))
        (if (i32.eqz (i32.and (local.get $h) (local.get $mask)))
          (then (return (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $hash (local.get $h))
    (i32.const -1)))
