/**
 * The block store: R2 objects holding one encoded block each, addressed by
 * the SHA-256 of the plaintext (docs/storage.md). Writes skip blocks that
 * already exist, so identical content is stored once across all users.
 */
import { blockObjectKey, BlockIntegrityError, decodeBlock, encodeBlock } from "../../../src/shared/blocks";
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
	/** False when the block already existed (deduplicated). */
	written: boolean;
}

/** Hashes, encodes and stores one plaintext block unless it is already stored. */
export async function putBlock(bucket: R2Bucket, ring: KeyRing, plain: Uint8Array, knownHash?: string): Promise<StoredBlock> {
	const hash = knownHash ?? (await sha256Hex(plain));
	const key = blockObjectKey(hash);
	if (await bucket.head(key)) return { hash, size: plain.byteLength, written: false };
	const encoded = await encodeBlock(plain, hash, ring);
	await bucket.put(key, encoded);
	return { hash, size: plain.byteLength, written: true };
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
