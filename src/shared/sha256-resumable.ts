/**
 * SHA-256 whose state can be saved as a short string and resumed anywhere:
 * the api worker carries a tus upload's whole-file hash from one PATCH to the
 * next through D1, whichever isolate each PATCH reaches (docs/decisions/0019).
 * The compression function is WebAssembly (sha256-compress.wat); Workers
 * cannot compile WebAssembly from bytes, so the host installs the compiled
 * module with {@link useSha256Module} before hashing.
 */

/** Where the state words live in the module's memory, and where the input goes after them. */
const STATE_OFFSET = 0;
const SHA256_DATA_OFFSET = 64;
/** Input is copied into the module's memory at most this much at a time, so the memory stays small. */
const MAX_PIECE = 1024 * 1024;

/** FIPS 180-4 §5.3.3. */
const IV = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

interface Engine {
	memory: WebAssembly.Memory;
	compress: (p: number, end: number) => void;
	/** `memory` from the data offset on; replaced when the memory grows. */
	data: Uint8Array;
}

let engine: Engine | null = null;

/**
 * Installs the compiled sha256-compress.wasm (or null to uninstall). Every
 * hash in the isolate shares it: each update loads its own state into the
 * module's memory and takes it back out within one synchronous call, so
 * hashes that interleave at `await`s cannot mix.
 */
export function useSha256Module(module: WebAssembly.Module | null): void {
	if (module === null) {
		engine = null;
		return;
	}
	const exports = new WebAssembly.Instance(module, {}).exports as unknown as Omit<Engine, "data">;
	engine = { ...exports, data: new Uint8Array(exports.memory.buffer, SHA256_DATA_OFFSET) };
}

function installed(): Engine {
	if (engine === null) throw new Error("sha256-resumable: install sha256-compress.wasm with useSha256Module first");
	return engine;
}

/** Runs the compression over `blocks` (a multiple of 64 bytes) from `state`, in place. */
function compress(state: Uint32Array, blocks: Uint8Array): void {
	const e = installed();
	const needed = Math.min(blocks.byteLength, MAX_PIECE);
	if (needed > e.data.byteLength) {
		e.memory.grow(Math.ceil((SHA256_DATA_OFFSET + needed - e.memory.buffer.byteLength) / 65536));
		e.data = new Uint8Array(e.memory.buffer, SHA256_DATA_OFFSET);
	}
	// The module loads and stores its words little-endian, whatever the host's order.
	const words = new DataView(e.memory.buffer, STATE_OFFSET, 32);
	for (let i = 0; i < 8; i++) words.setUint32(i * 4, state[i] as number, true);
	for (let at = 0; at < blocks.byteLength; at += MAX_PIECE) {
		const piece = blocks.subarray(at, Math.min(blocks.byteLength, at + MAX_PIECE));
		e.data.set(piece);
		e.compress(SHA256_DATA_OFFSET, SHA256_DATA_OFFSET + piece.byteLength);
	}
	for (let i = 0; i < 8; i++) state[i] = words.getUint32(i * 4, true);
}

function hex(bytes: Uint8Array): string {
	let out = "";
	for (const b of bytes) out += b.toString(16).padStart(2, "0");
	return out;
}

const SAVED = /^sha256:(\d{1,16}):([0-9a-f]{64}):((?:[0-9a-f]{2}){0,63})$/;

/** An incremental SHA-256 whose state {@link save} writes out and {@link ResumableSha256.restore} reads back. */
export class ResumableSha256 {
	readonly #state = Uint32Array.from(IV);
	/** The bytes after the last whole 64-byte block. */
	readonly #pending = new Uint8Array(64);
	#pendingLength = 0;
	#length = 0;

	/** Bytes hashed so far. */
	get length(): number {
		return this.#length;
	}

	update(data: Uint8Array): this {
		let at = 0;
		if (this.#pendingLength > 0) {
			at = Math.min(64 - this.#pendingLength, data.byteLength);
			this.#pending.set(data.subarray(0, at), this.#pendingLength);
			this.#pendingLength += at;
			if (this.#pendingLength < 64) {
				this.#length += data.byteLength;
				return this;
			}
			compress(this.#state, this.#pending);
			this.#pendingLength = 0;
		}
		const whole = (data.byteLength - at) & ~63;
		if (whole > 0) compress(this.#state, data.subarray(at, at + whole));
		const rest = data.subarray(at + whole);
		this.#pending.set(rest);
		this.#pendingLength = rest.byteLength;
		this.#length += data.byteLength;
		return this;
	}

	/** The digest of the bytes so far, in lowercase hex; the hash can go on after it. */
	digestHex(): string {
		const state = Uint32Array.from(this.#state);
		// FIPS 180-4 §5.1.1: 0x80, zeros, then the length in bits as a big-endian u64.
		const tail = new Uint8Array(this.#pendingLength < 56 ? 64 : 128);
		tail.set(this.#pending.subarray(0, this.#pendingLength));
		tail[this.#pendingLength] = 0x80;
		const bits = new DataView(tail.buffer, tail.byteLength - 8);
		bits.setUint32(0, Math.floor(this.#length / 0x20000000));
		bits.setUint32(4, (this.#length * 8) >>> 0);
		compress(state, tail);
		const out = new DataView(new ArrayBuffer(32));
		for (let i = 0; i < 8; i++) out.setUint32(i * 4, state[i] as number);
		return hex(new Uint8Array(out.buffer));
	}

	/** The state as a string of at most 216 characters: `sha256:<length>:<state>:<pending bytes>`. */
	save(): string {
		const words = new DataView(new ArrayBuffer(32));
		for (let i = 0; i < 8; i++) words.setUint32(i * 4, this.#state[i] as number);
		return `sha256:${this.#length}:${hex(new Uint8Array(words.buffer))}:${hex(this.#pending.subarray(0, this.#pendingLength))}`;
	}

	/** A hash that continues from `saved` (from {@link save}); null if it is not one. */
	static restore(saved: string): ResumableSha256 | null {
		const m = SAVED.exec(saved);
		if (!m) return null;
		const length = Number(m[1]);
		const pending = (m[3] ?? "").match(/../g) ?? [];
		if (length % 64 !== pending.length) return null;
		const hash = new ResumableSha256();
		const words = m[2] ?? "";
		for (let i = 0; i < 8; i++) hash.#state[i] = Number.parseInt(words.slice(i * 8, i * 8 + 8), 16);
		hash.#pending.set(pending.map((b) => Number.parseInt(b, 16)));
		hash.#pendingLength = pending.length;
		hash.#length = length;
		return hash;
	}
}
