/**
 * The whole-file SHA-256 of a tus upload, carried in this isolate's memory
 * from one PATCH to the next.
 *
 * A tus upload arrives in many requests, and SHA-256 cannot be split: the
 * file's hash needs every byte, in order, through one state. WebCrypto's
 * DigestStream cannot outlive the request that made it (its result is a
 * promise of that request), but node:crypto's Hash is a plain object whose
 * update() and digest() are synchronous, so it can. When an upload's PATCHes
 * reach the same isolate, as they usually do (a client sends them one after
 * another, on one connection), the hash is ready when the last byte arrives.
 * Otherwise (another isolate, an eviction, a PATCH that broke) the caller
 * falls back to hashing the stored blocks at the end, which costs a read of
 * the whole file: 2.6 s per GiB locally (BENCHMARKS.md).
 */
import { createHash, type Hash } from "node:crypto";

/** Uploads whose hash this isolate keeps; each costs a few hundred bytes. The oldest go first. */
const MAX_RUNNING = 1024;

const running = new Map<string, { hash: Hash; offset: number }>();

/**
 * The hash of the upload's first `offset` bytes, if this isolate has it,
 * taken out so that no concurrent PATCH of the same upload feeds it too. A
 * fresh hash at offset 0; null when the bytes before `offset` went elsewhere.
 */
export function takeRunningHash(uploadId: string, offset: number): Hash | null {
	const entry = running.get(uploadId);
	running.delete(uploadId);
	if (entry !== undefined && entry.offset === offset) return entry.hash;
	return offset === 0 ? createHash("sha256") : null;
}

/**
 * Keeps `hash`, which has seen exactly the upload's first `offset` bytes, for
 * the PATCH that continues from there. Only for an offset that is durable:
 * a PATCH that broke or lost a race must drop its hash instead.
 */
export function keepRunningHash(uploadId: string, hash: Hash, offset: number): void {
	running.set(uploadId, { hash, offset });
	for (const oldest of running.keys()) {
		if (running.size <= MAX_RUNNING) break;
		running.delete(oldest);
	}
}
