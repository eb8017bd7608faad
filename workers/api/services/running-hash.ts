/**
 * The whole-file SHA-256 of a tus upload, carried from one PATCH to the next
 * in the upload's row (`uploads.hash_state`), so the PATCH that completes
 * the upload has the file's hash whichever isolate it reaches and never
 * reads the upload back (docs/decisions/0019).
 *
 * SHA-256 cannot be split: the file's hash needs every byte, in order,
 * through one state, and node:crypto's state cannot be read out. The state
 * is therefore {@link ResumableSha256}'s, saved with every checkpoint of the
 * upload's offset, in the same statement. node:crypto is several times
 * faster, so a request that carries a whole upload by itself, which needs no
 * state, uses it.
 */
import { createHash } from "node:crypto";
import type { UploadRow } from "../../../src/shared/db/schema";
import sha256Compress from "../../../src/shared/sha256-compress.wasm";
import { ResumableSha256, useSha256Module } from "../../../src/shared/sha256-resumable";

// Workers cannot compile WebAssembly from bytes, so the module comes in as an import.
useSha256Module(sha256Compress);

/** An incremental SHA-256 of an upload's first `length` bytes. */
export interface WholeFileHash {
	readonly length: number;
	update(data: Uint8Array): void;
	digestHex(): string;
	/** The state for the next request to go on from; null when it cannot be saved. */
	save(): string | null;
}

/** node:crypto's SHA-256, whose state cannot be saved. */
class NativeHash implements WholeFileHash {
	readonly #hash = createHash("sha256");
	#length = 0;

	get length(): number {
		return this.#length;
	}

	update(data: Uint8Array): void {
		this.#hash.update(data);
		this.#length += data.byteLength;
	}

	digestHex(): string {
		return this.#hash.digest("hex");
	}

	save(): null {
		return null;
	}
}

/**
 * The hash of the upload's first `offset` bytes, ready to go on: at offset 0
 * a fresh one (node:crypto's when `wholeUpload` says this request carries
 * every byte, since no other request will need its state), else the saved
 * state. Null when no saved state covers exactly those bytes (an upload
 * received before states were saved, or one whose single request broke);
 * the caller then reads the stored blocks back at the end.
 */
export function resumeHash(upload: Pick<UploadRow, "offset" | "hashState">, wholeUpload = false): WholeFileHash | null {
	if (upload.offset === 0) return wholeUpload ? new NativeHash() : new ResumableSha256();
	const restored = upload.hashState === null ? null : ResumableSha256.restore(upload.hashState);
	return restored?.length === upload.offset ? restored : null;
}
