/** Test data and byte comparisons, for workerd and Node alike (WebCrypto only). */
export { sha256Hex as sha256 } from "../../src/shared/crypto";

/** Deterministic pseudo-random bytes (xorshift32), fast for tens of MiB. */
export function randomBytes(size: number, seed = 1): Uint8Array<ArrayBuffer> {
	const out = new Uint8Array(size);
	const words = new Uint32Array(out.buffer, 0, Math.floor(size / 4));
	let x = seed >>> 0 || 1;
	for (let i = 0; i < words.length; i++) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		words[i] = x >>> 0;
	}
	for (let i = words.length * 4; i < size; i++) out[i] = i & 0xff;
	return out;
}

/** True when two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
	if (a.length !== b.length) return false;
	for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
	return true;
}

/** The parts one after another. */
export function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
	const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
	let at = 0;
	for (const p of parts) {
		out.set(p, at);
		at += p.length;
	}
	return out;
}

/** Index of `needle` in `haystack`, or -1. */
export function indexOfBytes(haystack: Uint8Array, needle: Uint8Array): number {
	if (needle.length === 0) return 0;
	const first = needle[0] as number;
	outer: for (let i = haystack.indexOf(first); i !== -1 && i <= haystack.length - needle.length; i = haystack.indexOf(first, i + 1)) {
		for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
		return i;
	}
	return -1;
}

/** Reads a body until it ends or breaks: the bytes that arrived, and the error if it broke. */
export async function readUntilBroken(res: Response): Promise<{ bytes: Uint8Array; error: unknown }> {
	const reader = (res.body ?? new ReadableStream<Uint8Array>()).getReader();
	const parts: Uint8Array[] = [];
	try {
		for (;;) {
			const { done, value } = await reader.read();
			if (done) return { bytes: concat(parts), error: null };
			parts.push(value);
		}
	} catch (err) {
		return { bytes: concat(parts), error: err };
	}
}
