/**
 * The block store: R2 objects holding one encoded block each, addressed by
 * the SHA-256 of the plaintext (docs/storage.md). Writes skip blocks that
 * already exist, so identical content is stored once across all users.
 */
import { blockObjectKey, BlockIntegrityError, decodeBlock, encodeBlock, releaseBuffer } from "../../../src/shared/blocks";
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

/** Block puts in flight at once while a body is being received. */
export const STORE_CONCURRENCY = 3;

/** A block hashed, compressed if that helps, and encrypted: what goes to R2. */
interface SealedBlock extends StoredBlock {
	body: Uint8Array<ArrayBuffer>;
}

/** A block's bytes do not hash to the name the client gave it; nothing of it was stored. */
export class BlockHashMismatchError extends Error {
	constructor(
		readonly expected: string,
		readonly actual: string,
	) {
		super(`the bytes sent as block ${expected} hash to ${actual}`);
		this.name = "BlockHashMismatchError";
	}
}

/**
 * Hashes (unless `verifiedHash` is given) and encodes `plain`. Once this
 * resolves nothing refers to `plain` any more, so the caller may reuse it.
 *
 * @throws BlockHashMismatchError when `expectedHash` is given and `plain` does not hash to it.
 */
async function sealBlock(ring: KeyRing, plain: Uint8Array, verifiedHash?: string, expectedHash?: string): Promise<SealedBlock> {
	const hash = verifiedHash ?? (await sha256Hex(plain));
	if (expectedHash !== undefined && hash !== expectedHash) throw new BlockHashMismatchError(expectedHash, hash);
	const body = await encodeBlock(plain, hash, ring, { hashVerified: true });
	return { hash, size: plain.byteLength, body };
}

/**
 * Block storage failed in a way a later attempt can get past (R2 refused or
 * lost an operation, or a key's write rate stayed over its limit): the
 * request answers 503 UNAVAILABLE with Retry-After and stores nothing it
 * would commit (docs/decisions/0032-hot-blocks-and-long-downloads.md).
 */
export class StorageUnavailableError extends Error {
	/** As the runtime marks an error worth retrying, so every failure handler reads it the same way. */
	readonly retryable = true;

	constructor(
		readonly operation: "put" | "get",
		readonly hash: string,
		cause: unknown,
	) {
		super(`block ${operation} of ${hash} failed: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
		this.name = "StorageUnavailableError";
	}
}

/** Puts of one key refused for its write rate before the request gives up; R2 allows about one write per second per key. */
export const PUT_ATTEMPTS = 4;

/** Waits before the 2nd, 3rd and 4th put: together past R2's one-second window (https://developers.cloudflare.com/r2/platform/limits/). */
const PUT_BACKOFF_MS = [100, 400, 1000];

/**
 * An existing object this young stands for our write: the collector spares
 * any object written within its hour of grace, and the commit guard refuses
 * a block deleted after the upload read its clock (docs/decisions/0017).
 */
export const FRESH_COPY_MS = 60_000;

/** R2's refusal of a write to a key written less than a second ago ("Reduce your rate of writes", error 10058). */
export function isKeyRateLimited(err: unknown): boolean {
	const message = err instanceof Error ? err.message : String(err);
	return message.includes("(10058)") || /reduce your rate of writes/i.test(message);
}

/**
 * Writes a sealed block as one buffer, then frees it at once (see
 * releaseBuffer), so that dead blocks do not pile up until a GC.
 *
 * A popular block (all zeros, a widely shared installer) is written by many
 * uploads at once, and R2 refuses a key's writes past about one per second.
 * A refused put is not retried blindly: the object that caused it is almost
 * always there and fresh, and then it is as good as ours. Otherwise the put
 * is retried a few times over a bit more than a second, and in the end the
 * request fails retryably; a block is never silently left unwritten.
 */
async function storeSealed(bucket: R2Bucket, sealed: SealedBlock): Promise<void> {
	const key = blockObjectKey(sealed.hash);
	try {
		for (let attempt = 0; ; attempt++) {
			try {
				await bucket.put(key, sealed.body);
				return;
			} catch (err) {
				if (!isKeyRateLimited(err)) throw new StorageUnavailableError("put", sealed.hash, err);
				if (await freshCopyExists(bucket, key)) return;
				const wait = PUT_BACKOFF_MS[attempt];
				if (wait === undefined) throw new StorageUnavailableError("put", sealed.hash, err);
				await new Promise((resolve) => setTimeout(resolve, wait));
			}
		}
	} finally {
		releaseBuffer(sealed.body.buffer);
	}
}

/** Whether `key` holds an object written within {@link FRESH_COPY_MS}; a failing HEAD counts as no. */
async function freshCopyExists(bucket: R2Bucket, key: string): Promise<boolean> {
	const head = await bucket.head(key).catch(() => null);
	return head !== null && Date.now() - head.uploaded.getTime() <= FRESH_COPY_MS;
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
	const sealed = await sealBlock(ring, plain, verifiedHash);
	await storeSealed(bucket, sealed);
	return { hash: sealed.hash, size: sealed.size };
}

/**
 * Stores the blocks of a body as it streams in, with at most
 * {@link STORE_CONCURRENCY} R2 puts in flight. {@link BlockWriter.write}
 * encodes a block before it resolves and only the put runs on in the
 * background, so callers can hand it views into buffers they reuse (the
 * BYOB read buffer, the chunker's buffer) instead of a copy of every block.
 * Encoding runs on the request's thread either way, so doing it up front
 * costs no overlap; the puts are what wait.
 */
export class BlockWriter {
	readonly #inFlight = new Set<Promise<void>>();
	#failed = false;
	#failure: unknown = null;

	constructor(
		private readonly bucket: R2Bucket,
		private readonly ring: KeyRing,
	) {}

	/**
	 * Encodes `plain` and starts storing it; `onStored` runs once the put has
	 * succeeded. Waits first while {@link STORE_CONCURRENCY} puts are in
	 * flight, and throws the first failure of an earlier put.
	 *
	 * @param expectedHash the name a client gave the block: checked before anything is stored.
	 * @returns the block's SHA-256, lowercase hex.
	 * @throws BlockHashMismatchError when `plain` does not hash to `expectedHash`.
	 */
	async write(plain: Uint8Array, onStored?: (block: StoredBlock) => void, expectedHash?: string): Promise<string> {
		while (this.#inFlight.size >= STORE_CONCURRENCY) await Promise.race(this.#inFlight);
		this.#throwIfFailed();
		const sealed = await sealBlock(this.ring, plain, undefined, expectedHash);
		const block: StoredBlock = { hash: sealed.hash, size: sealed.size };
		const task = storeSealed(this.bucket, sealed)
			.then(() => onStored?.(block))
			.catch((err: unknown) => {
				if (this.#failed) return;
				this.#failed = true;
				this.#failure = err;
			});
		const tracked = task.finally(() => this.#inFlight.delete(tracked));
		this.#inFlight.add(tracked);
		return sealed.hash;
	}

	/** Waits for every put started so far; throws the first failure. */
	async flush(): Promise<void> {
		await Promise.all(this.#inFlight);
		this.#throwIfFailed();
	}

	/** Waits for every put started so far without throwing: for callers that are already failing. */
	async settle(): Promise<void> {
		await Promise.allSettled(this.#inFlight);
	}

	#throwIfFailed(): void {
		if (this.#failed) throw this.#failure;
	}
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
	let stored: Uint8Array;
	try {
		const object = await bucket.get(blockObjectKey(hash));
		if (!object) throw new BlockUnavailableError(hash, "missing");
		stored = new Uint8Array(await object.arrayBuffer());
	} catch (err) {
		if (err instanceof BlockUnavailableError) throw err;
		throw new StorageUnavailableError("get", hash, err);
	}
	try {
		return await decodeBlock(stored, hash, ring);
	} catch (err) {
		if (err instanceof BlockIntegrityError) throw new BlockUnavailableError(hash, `integrity check failed (${err.reason})`);
		throw err;
	}
}

/** Feeds stored blocks to `hash` in the order given, reading one block ahead while the previous one is hashed. */
export async function feedBlocks(
	bucket: R2Bucket,
	ring: KeyRing,
	hashes: readonly string[],
	hash: { update(data: Uint8Array): unknown },
): Promise<void> {
	let next = hashes[0] !== undefined ? getBlock(bucket, ring, hashes[0]) : null;
	for (let i = 0; next !== null; i++) {
		const current = await next;
		const following = hashes[i + 1];
		next = following !== undefined ? getBlock(bucket, ring, following) : null;
		hash.update(current);
	}
}
