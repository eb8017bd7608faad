/**
 * Reading request bodies with bounded memory.
 *
 * The default reader hands out a fresh buffer for every network read, and
 * that garbage grows memory while a large body is received. A BYOB reader
 * fills one reused buffer instead.
 */
import { createHash } from "node:crypto";

/** Read size for streamed bodies: large enough to amortize calls, small enough to stay cache-friendly. */
const READ_SIZE = 1 << 20;

/**
 * Yields the body in pieces that are views into ONE reused buffer: each
 * piece is valid only until the next iteration, so consumers must copy or
 * finish with it first. Stopping the loop early cancels the body.
 */
export async function* byobChunks(body: ReadableStream<Uint8Array>, readSize = READ_SIZE): AsyncGenerator<Uint8Array> {
	const reader = body.getReader({ mode: "byob" });
	let buffer = new ArrayBuffer(readSize);
	let finished = false;
	try {
		for (;;) {
			// The network hands over a few KiB at a time. readAtLeast (a Workers
			// extension, documented with ReadableStreamBYOBReader) fills the whole
			// buffer inside the runtime before it resolves, so the per-piece work
			// (hashing, chunking, awaits) runs once per MiB instead of hundreds
			// of times, and so does the promise machinery of the read itself.
			const { done, value } = await reader.readAtLeast(readSize, new Uint8Array(buffer));
			// Short of readSize only at the end of the body; the read after that says done.
			if (value !== undefined) {
				// The read transferred our buffer into `value`; take it back.
				buffer = value.buffer as ArrayBuffer;
				if (value.byteLength > 0) yield value;
			}
			if (done) {
				finished = true;
				return;
			}
		}
	} finally {
		if (!finished) await reader.cancel("stopped reading").catch(() => undefined);
		reader.releaseLock();
	}
}

/**
 * {@link byobChunks}, except that the body failing to arrive (the client went
 * away mid-upload) ends the pieces instead of throwing; `state.broken` then
 * says why. Errors thrown by the consumer's own work propagate as usual, so
 * a server-side failure is never mistaken for a dropped connection.
 */
export async function* piecesUntilBroken(body: ReadableStream<Uint8Array>, state: { broken: unknown }): AsyncGenerator<Uint8Array> {
	const source = byobChunks(body);
	try {
		for (;;) {
			let next: IteratorResult<Uint8Array>;
			try {
				next = await source.next();
			} catch (err) {
				state.broken = err;
				return;
			}
			if (next.done === true) return;
			yield next.value;
		}
	} finally {
		await source.return(undefined);
	}
}

export type BoundedBody = { ok: true; bytes: Uint8Array; sha256: string } | { ok: false; tooLarge: true };

/**
 * Reads at most `maxBytes` of `body` into one buffer, hashing (SHA-256) as
 * the bytes stream in, so a block's address is verified without a second
 * pass. Stops reading as soon as the limit is passed.
 */
export async function readBounded(
	body: ReadableStream<Uint8Array> | null,
	maxBytes: number,
	expectedLength: number | null,
): Promise<BoundedBody> {
	const hash = createHash("sha256");
	let buffer = new Uint8Array(expectedLength !== null && expectedLength <= maxBytes ? expectedLength : Math.min(maxBytes, 1 << 20));
	let length = 0;
	if (body !== null) {
		for await (const piece of byobChunks(body, 256 * 1024)) {
			if (length + piece.byteLength > maxBytes) return { ok: false, tooLarge: true };
			if (length + piece.byteLength > buffer.byteLength) {
				const grown = new Uint8Array(Math.min(maxBytes, Math.max(buffer.byteLength * 2, length + piece.byteLength)));
				grown.set(buffer.subarray(0, length));
				buffer = grown;
			}
			buffer.set(piece, length);
			length += piece.byteLength;
			hash.update(piece);
		}
	}
	return { ok: true, bytes: buffer.subarray(0, length), sha256: hash.digest("hex") };
}

/** The part of a request's execution context that {@link outliveClient} needs (Hono's and the runtime's both fit). */
export type WaitUntil = Pick<ExecutionContext, "waitUntil">;

/**
 * Returns `work`, kept running to its end even if the client goes away.
 *
 * Why: a deployed Worker may cancel a request's remaining work when its
 * client disconnects. The upload paths that read a body until it breaks
 * (tus PATCH, session block batches) write their progress in groups and
 * record the last group after the body ends (PROGRESS_GROUP), so a break
 * keeps every stored block only if that last write still runs.
 */
export function outliveClient<T>(ctx: WaitUntil, work: Promise<T>): Promise<T> {
	ctx.waitUntil(work.then(noop, noop));
	return work;
}

function noop(): void {}
