/** Reading bounded request bodies without trusting Content-Length. */
import { toHex } from "../../../src/shared/crypto";

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
	const digest = new crypto.DigestStream("SHA-256");
	const writer = digest.getWriter();
	let buffer = new Uint8Array(expectedLength !== null && expectedLength <= maxBytes ? expectedLength : Math.min(maxBytes, 1 << 20));
	let length = 0;
	if (body !== null) {
		const reader = body.getReader();
		for (;;) {
			const { done, value } = await reader.read();
			if (done) break;
			if (length + value.byteLength > maxBytes) {
				await reader.cancel("too large");
				await writer.abort();
				return { ok: false, tooLarge: true };
			}
			if (length + value.byteLength > buffer.byteLength) {
				const grown = new Uint8Array(Math.min(maxBytes, Math.max(buffer.byteLength * 2, length + value.byteLength)));
				grown.set(buffer.subarray(0, length));
				buffer = grown;
			}
			buffer.set(value, length);
			length += value.byteLength;
			await writer.write(value);
		}
	}
	await writer.close();
	return { ok: true, bytes: buffer.subarray(0, length), sha256: toHex(new Uint8Array(await digest.digest)) };
}
