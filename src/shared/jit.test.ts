/**
 * The hot loops of the upload path must not deoptimize while they run.
 *
 * V8 optimizes a long loop on stack replacement, before the code after the
 * loop has ever run; without type feedback there, the optimized code bailed
 * out on every call (see primeScanner in chunking.ts). Timing cannot show
 * this reliably, so this runs the loops under `node --trace-deopt`, where V8
 * prints every bailout, and requires none in them. Compiles run on the main
 * thread (--no-concurrent-recompilation) so that when they happen does not
 * depend on the machine's load, and --trace-opt shows that the loops were
 * optimized at all: a test that never reached the optimizing tier (or a
 * renamed function) would otherwise pass without checking anything.
 */
import { buildSync } from "esbuild";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

/** Feeds 48 MiB through the streaming chunker in 1 MiB pieces, and 40 block-sized samples through the compression gate. */
const WORKLOAD = `
import { Chunker } from "./src/shared/chunking";
import { shouldCompress } from "./src/shared/blocks";
const MiB = 1 << 20;
const data = new Uint8Array(48 * MiB);
let x = 0x2545f491;
const words = new Uint32Array(data.buffer);
for (let i = 0; i < words.length; i++) { x ^= x << 13; x ^= x >>> 17; x ^= x << 5; words[i] = x >>> 0; }
let chunks = 0;
for (let round = 0; round < 2; round++) {
	const chunker = new Chunker();
	for (let off = 0; off < data.length; off += MiB) for (const _ of chunker.views(data.subarray(off, off + MiB))) chunks++;
	if (chunker.finish() !== null) chunks++;
}
let compressible = 0;
for (let i = 0; i < 40; i++) if (await shouldCompress(data.subarray(i * MiB, i * MiB + 256 * 1024))) compressible++;
console.log(JSON.stringify({ chunks, compressible }));
`;

/** The functions that run once per byte or per block on the upload path. */
const HOT = ["scanRange", "scanBytes", "scanChunk", "views", "byteEntropy", "repeatsItself"];

/** The ones whose loops are long enough that V8 must have optimized them in this workload. */
const LOOPS = ["scanRange", "byteEntropy"];

describe("hot loops under V8", () => {
	it("chunking and the compression gate never bail out of optimized code", () => {
		const dir = mkdtempSync(join(tmpdir(), "drive-jit-"));
		try {
			const script = join(dir, "workload.mjs");
			buildSync({
				stdin: { contents: WORKLOAD, resolveDir: process.cwd(), loader: "ts" },
				bundle: true,
				format: "esm",
				platform: "node",
				outfile: script,
				logLevel: "warning",
			});
			const run = spawnSync(process.execPath, ["--no-concurrent-recompilation", "--trace-opt", "--trace-deopt", script], {
				encoding: "utf8",
				maxBuffer: 64 << 20,
			});
			expect(run.status, run.stderr).toBe(0);
			const result = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as { chunks: number; compressible: number };
			// The workload really ran: ~1 MiB chunks, and random bytes are never worth compressing.
			expect(result.chunks).toBeGreaterThan(60);
			expect(result.compressible).toBe(0);
			const bailouts = run.stdout
				.split("\n")
				.filter((line) => line.includes("bailout") && !line.includes("on stack replacement"))
				.filter((line) => HOT.some((name) => line.includes(`<JSFunction ${name} `)));
			expect(bailouts).toEqual([]);
			const lines = run.stdout.split("\n");
			for (const name of LOOPS) {
				expect(
					lines.some((line) => line.startsWith("[completed compiling") && line.includes(`<JSFunction ${name} `)),
					`${name} was optimized`,
				).toBe(true);
			}
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	});
});
