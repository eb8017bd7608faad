/**
 * The block store: R2 objects holding one encoded block each, addressed by
 * the SHA-256 of the plaintext (docs/storage.md). Writes skip blocks that
 * already exist, so identical content is stored once across all users.
 */
import { blockObjectKey, BlockIntegrityError, decodeBlock, encodeBlockParts } from "../../../src/shared/blocks";
import { parseKeyRing, sha256Hex, type KeyRing } from "../../../src/shared/crypto";

let cachedRing: { secret: string; ring: KeyRing } | null = null;

/** The block key ring from the BLOCK_KEYS secret, parsed once per isolate. */
export function keyRing(env: { BLOCK_KEYS: string }): KeyRing {
	if (cachedRing?.secret !== env.BLOCK_KEYS) cachedRing = { secret: env.BLOCK_KEYS, ring: parseKeyRing(env.BLOCK_KEYS) };
	return cachedRing.ring;
}

export interface StoredBlock {
	hash: string;
	size: number;
}

/**
 * Encodes and stores one plaintext block, always writing it. Rewriting an
 * existing block is what keeps deduplication safe against the garbage
 * collector: an upload never depends on an object it did not just write
 * (docs/decisions/0007). The key is the same, so storage stays deduplicated.
 *
 * @param verifiedHash the block's SHA-256, when the caller computed it from
 *   these very bytes; otherwise it is computed here.
 */
export async function putBlock(bucket: R2Bucket, ring: KeyRing, plain: Uint8Array, verifiedHash?: string): Promise<StoredBlock> {
	const hash = verifiedHash ?? (await sha256Hex(plain));
	const encoded = await encodeBlockParts(plain, hash, ring, { hashVerified: true });
	// A Blob of the two parts avoids a block-sized concatenation in JS (less
	// garbage, lower peak memory); a FixedLengthStream here measured 3x slower.
	await bucket.put(blockObjectKey(hash), new Blob([encoded.header, encoded.ciphertext]));
	return { hash, size: plain.byteLength };
}

/** Thrown when a stored block is missing or fails its integrity check. */
export class BlockUnavailableError extends Error {
	constructor(
		readonly hash: string,
		readonly reason: string,
	) {
		super(`block ${hash} is unavailable: ${reason}`);
		this.name = "BlockUnavailableError";
	}
}

/**
 * Reads, decrypts and verifies one block. Never returns bytes that fail the
 * GCM tag or the hash: it throws {@link BlockUnavailableError} instead.
 */
export async function getBlock(bucket: R2Bucket, ring: KeyRing, hash: string): Promise<Uint8Array> {
	const object = await bucket.get(blockObjectKey(hash));
	if (!object) throw new BlockUnavailableError(hash, "missing");
	const stored = new Uint8Array(await object.arrayBuffer());
	try {
		return await decodeBlock(stored, hash, ring);
	} catch (err) {
		if (err instanceof BlockIntegrityError) throw new BlockUnavailableError(hash, `integrity check failed (${err.reason})`);
		throw err;
	}
}
