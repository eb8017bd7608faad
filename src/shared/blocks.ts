/**
 * The stored block format: content-addressed, compressed when it helps,
 * AES-256-GCM encrypted.
 *
 * A block's address is the lowercase hex SHA-256 of its plaintext. What lands
 * in R2 under {@link blockObjectKey} is:
 *
 * ```
 * offset       size  field
 * 0            3     magic "DRB" (0x44 0x52 0x42)
 * 3            1     format version = 1
 * 4            1     flags: bit 0 = payload is deflate-raw compressed; other bits must be 0
 * 5            1     key id length L (1..16)
 * 6            L     key id, ASCII [A-Za-z0-9_-]
 * 6+L          12    AES-GCM IV (random)
 * 18+L         n     AES-256-GCM ciphertext of the (possibly compressed) payload
 * 18+L+n       16    GCM tag
 * ```
 *
 * The GCM additional authenticated data is the header (bytes 0 .. 18+L, i.e.
 * everything before the ciphertext) followed by the 32 raw bytes of the block
 * hash. Editing a flag, swapping the key id, or moving an object to another
 * address therefore fails authentication. The AES key itself is derived per
 * block from the hash (see {@link KeyRing}), so a wrong hash also means a wrong
 * key: decoding under the wrong address fails with reason "auth", not "hash".
 * Reason "hash" is reserved for an authentic block whose plaintext does not
 * hash to its address, which only a writer bug can produce.
 */

import { fromHex, isSha256Hex, KEY_ID_RE, type KeyRing, randomBytes, sha256Hex } from "./crypto";

/** "DRB": lets audits and humans tell a Drive block from any other object. */
export const BLOCK_MAGIC: Uint8Array<ArrayBuffer> = new Uint8Array([0x44, 0x52, 0x42]);

/** Bumped on any incompatible layout change; readers reject versions they do not know. */
export const BLOCK_FORMAT_VERSION = 1;

/** Flags bit 0: the encrypted payload is deflate-raw compressed. */
export const BLOCK_FLAG_COMPRESSED = 0x01;

/** Every flag a version-1 reader understands; any other bit set is a format error. */
export const BLOCK_KNOWN_FLAGS = BLOCK_FLAG_COMPRESSED;

/** Magic + version + flags + key id length: the header bytes before the key id. */
export const BLOCK_HEADER_FIXED_BYTES = 6;

/** Key ids are capped so the header stays small and bounded. */
export const BLOCK_MAX_KEY_ID_BYTES = 16;

/** 96-bit IV, the size GCM is designed for. */
export const BLOCK_IV_BYTES = 12;

/** Full 128-bit GCM tag; truncated tags weaken authentication. */
export const BLOCK_TAG_BYTES = 16;

/** The largest plaintext block any client may send (8 MiB). */
export const MAX_BLOCK_PLAINTEXT_BYTES = 8 * 1024 * 1024;

/**
 * Ceiling on decompressed output. Payloads are authenticated, so only a key
 * holder could craft a decompression bomb, but a reader should never allocate
 * without bound. Twice the plaintext limit leaves room to raise that limit
 * without old readers rejecting new blocks during a rolling deploy.
 */
export const MAX_DECOMPRESSED_BYTES = 16 * 1024 * 1024;

/** Size of each sample slice {@link shouldCompress} compresses. */
export const COMPRESSION_SAMPLE_SLICE_BYTES = 16 * 1024;

/** The sample must shrink below this fraction for the whole block to be compressed. */
export const COMPRESSION_SAMPLE_MAX_RATIO = 0.9;

const COMPRESSION_FORMAT = "deflate-raw";

/** Why a stored block was rejected. */
export type BlockIntegrityReason = "format" | "unknown_key" | "auth" | "hash";

/**
 * A stored block could not be decoded into the plaintext its address names.
 * Decoding never returns bytes it has not fully verified; every failure is one
 * of these.
 *
 * - `format`: bad magic/version/flags/length, or the authenticated payload
 *   failed to decompress or exceeded {@link MAX_DECOMPRESSED_BYTES}.
 * - `unknown_key`: the header names a key id missing from the ring (a key was
 *   dropped from the secret too early).
 * - `auth`: GCM authentication failed: the object was corrupted or tampered
 *   with, or is being read under the wrong address.
 * - `hash`: the plaintext does not hash to the expected address.
 */
export class BlockIntegrityError extends Error {
	readonly reason: BlockIntegrityReason;

	constructor(reason: BlockIntegrityReason, message: string, options?: { cause?: unknown }) {
		super(message, options);
		this.name = "BlockIntegrityError";
		this.reason = reason;
	}
}

/** The parsed, not yet authenticated, header of a stored block. */
export interface BlockHeader {
	version: number;
	flags: number;
	compressed: boolean;
	keyId: string;
	iv: Uint8Array<ArrayBuffer>;
	/** Bytes before the ciphertext; also the length of the header part of the AAD. */
	headerLength: number;
}

/**
 * R2 object key of a block: `blocks/<first 2 hex>/<hash>`.
 *
 * The two-hex-digit fan-out splits the namespace into 256 prefixes, so garbage
 * collection and audits can list (and parallelise over) one prefix at a time
 * instead of paging through every block in one listing.
 *
 * @throws TypeError if `hashHex` is not 64 lowercase hex chars.
 */
export function blockObjectKey(hashHex: string): string {
	if (!isSha256Hex(hashHex)) throw new TypeError("blockObjectKey: hash must be 64 lowercase hex chars");
	return `blocks/${hashHex.slice(0, 2)}/${hashHex}`;
}

/**
 * Parses a stored block's header without decrypting it, e.g. for a rotation
 * job that finds blocks still encrypted under an old key. Nothing returned is
 * authenticated until {@link decodeBlock} succeeds.
 *
 * @throws BlockIntegrityError with reason "format".
 */
export function readBlockHeader(stored: Uint8Array): BlockHeader {
	if (stored.length < BLOCK_HEADER_FIXED_BYTES) throw formatError("block is shorter than its header");
	if (stored[0] !== BLOCK_MAGIC[0] || stored[1] !== BLOCK_MAGIC[1] || stored[2] !== BLOCK_MAGIC[2]) {
		throw formatError("bad magic");
	}
	const version = stored[3] ?? 0;
	if (version !== BLOCK_FORMAT_VERSION) throw formatError(`unsupported format version ${version}`);
	const flags = stored[4] ?? 0;
	if ((flags & ~BLOCK_KNOWN_FLAGS) !== 0) throw formatError(`unknown flags 0x${flags.toString(16)}`);
	const keyIdLength = stored[5] ?? 0;
	if (keyIdLength < 1 || keyIdLength > BLOCK_MAX_KEY_ID_BYTES) throw formatError("bad key id length");
	const ivStart = BLOCK_HEADER_FIXED_BYTES + keyIdLength;
	const headerLength = ivStart + BLOCK_IV_BYTES;
	if (stored.length < headerLength + BLOCK_TAG_BYTES) throw formatError("block is truncated");
	const keyId = String.fromCharCode(...stored.subarray(BLOCK_HEADER_FIXED_BYTES, ivStart));
	if (!KEY_ID_RE.test(keyId)) throw formatError("bad key id");
	return {
		version,
		flags,
		compressed: (flags & BLOCK_FLAG_COMPRESSED) !== 0,
		keyId,
		iv: stored.slice(ivStart, headerLength),
		headerLength,
	};
}

/**
 * Encrypts a block for storage, compressing first when that pays off.
 *
 * The hash is checked against the plaintext here, so an upload handler can
 * rely on this call as its proof that the client's claimed address is honest
 * (a lying client must never be able to plant bytes under another block's
 * address, since blocks are shared across users by deduplication).
 *
 * @throws TypeError for a malformed `hashHex`, RangeError for a plaintext over
 *   {@link MAX_BLOCK_PLAINTEXT_BYTES}, BlockIntegrityError("hash") when the
 *   plaintext does not hash to `hashHex` (unless `hashVerified`).
 */
export async function encodeBlock(
	plain: Uint8Array,
	hashHex: string,
	ring: KeyRing,
	options: {
		/** The caller hashed `plain` itself just now (e.g. while it streamed): skip the second SHA-256 pass. */
		hashVerified?: boolean;
	} = {},
): Promise<Uint8Array<ArrayBuffer>> {
	if (!isSha256Hex(hashHex)) throw new TypeError("encodeBlock: hash must be 64 lowercase hex chars");
	if (plain.length > MAX_BLOCK_PLAINTEXT_BYTES) {
		throw new RangeError(`encodeBlock: block of ${plain.length} bytes exceeds ${MAX_BLOCK_PLAINTEXT_BYTES}`);
	}
	const keyId = ring.currentKeyId;
	const [actualHash, key, compressed] = await Promise.all([
		options.hashVerified === true ? hashHex : sha256Hex(plain),
		ring.deriveBlockKey(keyId, hashHex),
		compressIfWorthwhile(plain),
	]);
	if (actualHash !== hashHex) throw new BlockIntegrityError("hash", "encodeBlock: plaintext does not match its hash");

	const payload = compressed ?? plain;
	const headerLength = BLOCK_HEADER_FIXED_BYTES + keyId.length + BLOCK_IV_BYTES;
	const header = new Uint8Array(headerLength);
	header.set(BLOCK_MAGIC, 0);
	header[3] = BLOCK_FORMAT_VERSION;
	header[4] = compressed === null ? 0 : BLOCK_FLAG_COMPRESSED;
	header[5] = keyId.length;
	for (let i = 0; i < keyId.length; i++) header[BLOCK_HEADER_FIXED_BYTES + i] = keyId.charCodeAt(i);
	const iv = randomBytes(BLOCK_IV_BYTES);
	header.set(iv, headerLength - BLOCK_IV_BYTES);

	const ciphertext = await crypto.subtle.encrypt(
		{ name: "AES-GCM", iv, additionalData: additionalData(header, hashHex), tagLength: BLOCK_TAG_BYTES * 8 },
		key,
		bufferSource(payload),
	);
	// WebCrypto cannot encrypt into a buffer of ours, so the header has to be
	// joined to the ciphertext by one copy.
	const out = new Uint8Array(headerLength + ciphertext.byteLength);
	out.set(header, 0);
	out.set(new Uint8Array(ciphertext), headerLength);
	releaseBuffer(ciphertext);
	if (compressed !== null) releaseBuffer(compressed.buffer);
	return out;
}

/**
 * Frees an ArrayBuffer's memory now rather than at the next garbage
 * collection, by detaching it (`ArrayBuffer.prototype.transfer`, ES2024; a
 * no-op where it is missing). V8 frees a dead buffer only when a GC finds
 * it, and streaming a large body allocates almost no JS objects, so GCs are
 * rare and block-sized buffers pile up while a large body streams (the
 * upload memory row of BENCHMARKS.md). Only for a buffer nothing refers to
 * any more: every view of it reads as empty afterwards.
 */
export function releaseBuffer(buffer: ArrayBuffer): void {
	(buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer }).transfer?.(0);
}

/**
 * Decrypts and fully verifies a stored block, returning its plaintext.
 *
 * Checks, in order: header format, key id in the ring, GCM tag (over the
 * header and `hashHex`), decompression within {@link MAX_DECOMPRESSED_BYTES},
 * and SHA-256(plaintext) === `hashHex`.
 *
 * @throws BlockIntegrityError on any failure (see its reasons; note a wrong
 *   `hashHex` surfaces as "auth"), TypeError for a malformed `hashHex`.
 */
export async function decodeBlock(stored: Uint8Array, hashHex: string, ring: KeyRing): Promise<Uint8Array<ArrayBuffer>> {
	if (!isSha256Hex(hashHex)) throw new TypeError("decodeBlock: hash must be 64 lowercase hex chars");
	const header = readBlockHeader(stored);
	if (!ring.has(header.keyId)) {
		throw new BlockIntegrityError("unknown_key", `block is encrypted under unknown key id ${JSON.stringify(header.keyId)}`);
	}
	const key = await ring.deriveBlockKey(header.keyId, hashHex);

	let payload: Uint8Array<ArrayBuffer>;
	try {
		payload = new Uint8Array(
			await crypto.subtle.decrypt(
				{
					name: "AES-GCM",
					iv: header.iv,
					additionalData: additionalData(stored.subarray(0, header.headerLength), hashHex),
					tagLength: BLOCK_TAG_BYTES * 8,
				},
				key,
				bufferSource(stored.subarray(header.headerLength)),
			),
		);
	} catch (cause) {
		throw new BlockIntegrityError("auth", "block failed authentication (corrupt, tampered, or wrong address)", {
			cause,
		});
	}

	let plain = payload;
	if (header.compressed) {
		let inflated: Uint8Array<ArrayBuffer> | null;
		try {
			inflated = await transformBytes(payload, new DecompressionStream(COMPRESSION_FORMAT), MAX_DECOMPRESSED_BYTES);
		} catch (cause) {
			throw new BlockIntegrityError("format", "block payload failed to decompress", { cause });
		}
		if (inflated === null) {
			throw new BlockIntegrityError("format", `block decompresses beyond ${MAX_DECOMPRESSED_BYTES} bytes`);
		}
		plain = inflated;
	}

	if ((await sha256Hex(plain)) !== hashHex) {
		throw new BlockIntegrityError("hash", "decoded block does not match its address");
	}
	return plain;
}

/**
 * Whether compressing `plain` is likely to pay off, judged from a sample so
 * incompressible data (media, archives, already-encrypted files; most bytes a
 * file service stores) never pays for a full-block compression.
 *
 * Blocks under three slices are sampled whole; larger blocks contribute a
 * {@link COMPRESSION_SAMPLE_SLICE_BYTES} slice from the start, middle and end,
 * which catches files with a compressible header but a random body and vice
 * versa.
 */
export async function shouldCompress(plain: Uint8Array): Promise<boolean> {
	return (await compressSample(plain)).worthwhile;
}

// ---------------------------------------------------------------------------
// Internals
// ---------------------------------------------------------------------------

function formatError(message: string): BlockIntegrityError {
	return new BlockIntegrityError("format", `malformed block: ${message}`);
}

function bufferSource(data: Uint8Array): Uint8Array<ArrayBuffer> {
	if (data.buffer instanceof ArrayBuffer) return data as Uint8Array<ArrayBuffer>;
	return new Uint8Array(data);
}

function additionalData(header: Uint8Array, hashHex: string): Uint8Array<ArrayBuffer> {
	const aad = new Uint8Array(header.length + 32);
	aad.set(header, 0);
	aad.set(fromHex(hashHex), header.length);
	return aad;
}

interface SampleResult {
	worthwhile: boolean;
	/** Set when the sample was the whole block, so the caller can reuse it. */
	wholeBlock: Uint8Array<ArrayBuffer> | null;
}

async function compressSample(plain: Uint8Array): Promise<SampleResult> {
	if (plain.length === 0) return { worthwhile: false, wholeBlock: null };
	const slice = COMPRESSION_SAMPLE_SLICE_BYTES;
	const wholeIsSample = plain.length < 3 * slice;
	let sample: Uint8Array;
	if (wholeIsSample) {
		sample = plain;
	} else {
		const mid = Math.floor((plain.length - slice) / 2);
		const slices = [plain.subarray(0, slice), plain.subarray(mid, mid + slice), plain.subarray(plain.length - slice)];
		if (!slices.some(repeatsItself) && byteEntropy(slices) >= INCOMPRESSIBLE_ENTROPY_BITS) return { worthwhile: false, wholeBlock: null };
		sample = new Uint8Array(3 * slice);
		for (const [i, part] of slices.entries()) sample.set(part, i * slice);
	}
	// Stop as soon as the output reaches the threshold: no need to finish
	// compressing data that has already failed the test.
	const limit = Math.ceil(sample.length * COMPRESSION_SAMPLE_MAX_RATIO) - 1;
	const out = await transformBytes(sample, new CompressionStream(COMPRESSION_FORMAT), limit);
	if (out === null) return { worthwhile: false, wholeBlock: null };
	return { worthwhile: true, wholeBlock: wholeIsSample ? out : null };
}

/**
 * Bits per byte of the sample's byte histogram at or above which deflate is
 * not even tried. Deflating an incompressible sample costs an upload a
 * share of its CPU (docs/decisions/0011) to learn what the histogram
 * already says: 48 KiB of random bytes score 7.996 ± 0.0003, and Huffman
 * coding cannot beat the order-0 entropy.
 * What the histogram cannot see is repeats (LZ77's half of deflate).
 * Periodic data is caught first ({@link repeatsItself}), as Btrfs's
 * compression heuristic does before its own entropy test
 * (fs/btrfs/compression.c). Other repeats in bytes that score this high
 * need about a tenth of the sample to be repeated random bytes, which real
 * files essentially never are; such a block is stored uncompressed: larger,
 * never wrong. Only blocks of three slices or more are gated; smaller ones
 * are deflated whole, which is cheap.
 */
const INCOMPRESSIBLE_ENTROPY_BITS = 7.99;

/** Whether the first half of `slice` equals its second half: periodic data, which deflate shrinks whatever its byte histogram. */
function repeatsItself(slice: Uint8Array): boolean {
	const half = slice.length >> 1;
	for (let i = 0; i < half; i++) if (slice[i] !== slice[i + half]) return false;
	return true;
}

/** Shannon entropy, in bits per byte, of the bytes of `parts` taken together. */
function byteEntropy(parts: readonly Uint8Array[]): number {
	const counts = new Uint32Array(256);
	let total = 0;
	// Indexes in range by construction (a byte indexes 256 counts): the hot
	// loop skips the undefined checks noUncheckedIndexedAccess would add.
	/* eslint-disable @typescript-eslint/no-non-null-assertion */
	for (const part of parts) {
		for (let i = 0; i < part.length; i++) counts[part[i]!]!++;
		total += part.length;
	}
	let bits = 0;
	for (let b = 0; b < 256; b++) {
		const n = counts[b]!;
		/* eslint-enable @typescript-eslint/no-non-null-assertion */
		if (n > 0) bits -= n * Math.log2(n / total);
	}
	return bits / total;
}

// Prime byteEntropy's feedback before V8 OSR-compiles its counting loop, for
// the same reason as primeScanner in chunking.ts: otherwise the optimized code
// deoptimized on the never-run second loop (`n > 0`) on every call, 227
// times in three 90 MiB uploads. V8 only collects feedback from a function's
// 9th call on (it allocates the feedback vector lazily), hence the repeats.
for (let i = 0; i < 16; i++) byteEntropy([new Uint8Array([0, 1, 1]), new Uint8Array([2, 2, 2]), new Uint8Array([3, 3, 3, i])]);

/** The deflate-raw compressed block, or null when storing it raw is at least as small. */
async function compressIfWorthwhile(plain: Uint8Array): Promise<Uint8Array<ArrayBuffer> | null> {
	const sample = await compressSample(plain);
	if (!sample.worthwhile) return null;
	if (sample.wholeBlock !== null) return sample.wholeBlock;
	// A promising sample is no guarantee for the rest of the block.
	return transformBytes(plain, new CompressionStream(COMPRESSION_FORMAT), plain.length - 1);
}

/**
 * Runs `data` through a (de)compression stream. Writing and reading run
 * concurrently, and output chunks are copied once into an exactly sized
 * buffer, which is faster in Node than `new Response(stream).arrayBuffer()`.
 *
 * @returns null, after cancelling the stream, as soon as the output would
 *   exceed `maxOutput` bytes.
 */
async function transformBytes(
	data: Uint8Array,
	stream: CompressionStream | DecompressionStream,
	maxOutput: number,
): Promise<Uint8Array<ArrayBuffer> | null> {
	const writer = stream.writable.getWriter();
	const reader = stream.readable.getReader();
	const writing = (async () => {
		await writer.write(bufferSource(data));
		await writer.close();
	})();
	// Cancelling the reader errors the writable side; that rejection is expected
	// and must not surface as an unhandled rejection. Real write errors also
	// error the readable side, so the read loop reports them.
	writing.catch(() => undefined);

	const chunks: Uint8Array[] = [];
	let total = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		total += value.length;
		if (total > maxOutput) {
			await reader.cancel().catch(() => undefined);
			return null;
		}
		chunks.push(value);
	}
	await writing;
	const out = new Uint8Array(total);
	let offset = 0;
	for (const chunk of chunks) {
		out.set(chunk, offset);
		offset += chunk.length;
	}
	return out;
}
