// The chunker's throughput in Node and in workerd, beside SHA-256 of the same bytes.
import { createHash } from "node:crypto";
import { join } from "node:path";
import { bundle } from "../lib/bundle.mjs";
import { expectStatus } from "../lib/http.mjs";

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx) {
	const mib = ctx.quick ? 32 : 256;
	ctx.log(`chunker in Node (${mib} MiB)`);
	const node = nodeChunker(await bundle(ctx.tree, "src/shared/chunking.ts", join(ctx.tmp, "chunking.mjs"), "neutral"), mib);
	const stack = await ctx.startStack();
	try {
		ctx.log(`chunker in workerd (${mib} MiB)`);
		const res = await fetch(`${stack.url}/_bench/chunker?mib=${mib}`);
		await expectStatus(res, "GET /_bench/chunker", 200);
		return { mib, node, workerd: await res.json() };
	} finally {
		await stack.stop();
	}
}

/** Best of 3 over `mib` MiB of xorshift32 bytes: chunkBoundaries, then SHA-256 (node:crypto). MB/s, MB = 10^6 bytes. */
function nodeChunker({ chunkBoundaries }, mib) {
	const data = xorshiftBytes(mib * 1024 * 1024);
	const best = (fn) => {
		let ms = Infinity;
		for (let run = 0; run < 3; run++) {
			const t0 = performance.now();
			fn();
			ms = Math.min(ms, performance.now() - t0);
		}
		return data.byteLength / 1e6 / (ms / 1000);
	};
	let chunks = 0;
	const chunker = best(() => (chunks = chunkBoundaries(data).length));
	const sha256 = best(() => createHash("sha256").update(data).digest());
	return { chunker_mb_s: chunker, sha256_mb_s: sha256, chunks };
}

/** Deterministic incompressible bytes: xorshift32 words, as /_bench/chunker makes them (with another seed). */
function xorshiftBytes(size, seed = 0x9e3779b9) {
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
