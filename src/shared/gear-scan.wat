;; The FastCDC gear-hash scan of src/shared/chunking.ts, as WebAssembly.
;;
;; Why: the JavaScript loop runs at ~4 GB/s only once V8's optimizing tier
;; has compiled it, and in workerd that compile sometimes never lands: the
;; function then stays in a lower tier for the life of the isolate and chunks
;; at ~0.3 GB/s (docs/decisions/0012). WebAssembly's baseline compiler
;; (Liftoff) compiles this on the spot and already runs it at ~2.7 GB/s,
;; so the speed no longer depends on a background job.
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
