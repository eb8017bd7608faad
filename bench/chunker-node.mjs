// Chunker throughput benchmark for Node 22.
//
//   node_modules/.bin/node --experimental-strip-types bench/chunker-node.mjs [MiB]
//
// Prints one JSON line:
//   {"chunker_mb_s":..,"sha256_mb_s":..,"chunks":..,"avg_chunk":..}
// MB = 10^6 bytes; throughput is total input bytes / wall time, best of 3.
// SHA-256 (node:crypto, OpenSSL) over the same data is the ceiling the
// chunker is compared against: every uploaded block is hashed anyway, so
// chunking should not be the bottleneck.
//
// Other bench scripts can `import { benchChunker } from "./chunker-node.mjs"`
// (the importing process also needs --experimental-strip-types, or a Node
// version that strips types by default).

import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import { chunkBoundaries } from "../src/shared/chunking.ts";

/**
 * Fills `size` bytes with xorshift32 output (written as uint32 words: fast,
 * deterministic on little-endian hosts, which is all we run on).
 * @param {number} size bytes, multiple of 4
 * @param {number} seed non-zero 32-bit seed
 * @returns {Uint8Array}
 */
export function randomBytes(size, seed = 0x9e3779b9) {
	const words = new Uint32Array(size >>> 2);
	let x = seed | 0 || 1;
	for (let i = 0; i < words.length; i++) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		words[i] = x;
	}
	return new Uint8Array(words.buffer);
}

/**
 * @param {() => void} fn
 * @param {number} runs
 * @returns {number} best wall time in ms
 */
function bestOf(fn, runs) {
	let best = Infinity;
	for (let r = 0; r < runs; r++) {
		const t0 = performance.now();
		fn();
		const dt = performance.now() - t0;
		if (dt < best) best = dt;
	}
	return best;
}

/**
 * Runs the benchmark and returns the result object (also what the CLI prints).
 * @param {{ sizeMiB?: number, runs?: number }} [options]
 * @returns {{ chunker_mb_s: number, sha256_mb_s: number, chunks: number, avg_chunk: number }}
 */
export function benchChunker({ sizeMiB = 256, runs = 3 } = {}) {
	const size = sizeMiB * 1024 * 1024;
	const data = randomBytes(size);

	let lengths = [];
	const chunkMs = bestOf(() => {
		lengths = chunkBoundaries(data);
	}, runs);

	const shaMs = bestOf(() => {
		createHash("sha256").update(data).digest();
	}, runs);

	const mbps = (ms) => Math.round((size / 1e6 / (ms / 1e3)) * 10) / 10;
	return {
		chunker_mb_s: mbps(chunkMs),
		sha256_mb_s: mbps(shaMs),
		chunks: lengths.length,
		avg_chunk: Math.round(size / lengths.length),
	};
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
	const arg = Number(process.argv[2]);
	const sizeMiB = Number.isFinite(arg) && arg > 0 ? arg : 256;
	console.log(JSON.stringify(benchChunker({ sizeMiB })));
}
