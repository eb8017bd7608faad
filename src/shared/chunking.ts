/**
 * Content-defined chunking (normalized FastCDC) shared by the Worker, Node
 * clients and browsers.
 *
 * The chunk boundaries produced here are part of Drive's storage format: two
 * clients that chunk the same bytes must agree on every cut, otherwise block
 * level deduplication and delta sync silently stop working. Everything that
 * influences a cut — the gear table, the masks, the size limits and the exact
 * loop semantics below — is therefore frozen and pinned by tests. Change none
 * of it without a format migration.
 *
 * Algorithm (Xia et al., "FastCDC: a Fast and Efficient Content-Defined
 * Chunking Approach for Data Deduplication", USENIX ATC 2016, and the
 * extended version in IEEE TPDS 2020):
 *
 *   For a chunk starting at offset 0 of the remaining input:
 *   - bytes [0, MIN) are skipped, not hashed ("sub-minimum chunk cut-point
 *     skipping" in the 2016 paper); the hash starts at 0 for every chunk;
 *   - for every byte b at offset i >= MIN: `h = (h << 1) + GEAR[b]` (mod 2^32);
 *   - while i < AVG the cut condition is `(h & MASK_S) === 0` (harder, 22 bits),
 *     from AVG on it is `(h & MASK_L) === 0` (easier, 18 bits). This is the
 *     paper's "normalized chunking" at level 2: 20 +/- 2 effective bits around
 *     the 2^20 = 1 MiB average, which makes early cuts rarer and late ones
 *     likelier, concentrating chunk sizes around the average (and making up
 *     for the dedup ratio that sub-minimum skipping costs);
 *   - when the condition holds at offset i the chunk is bytes [0, i]
 *     (length i + 1; the paper returns i, i.e. puts the matching byte into
 *     the next chunk — we keep it in the current one so that a chunk's end
 *     depends only on its own bytes);
 *   - a chunk that reaches MAX bytes without a match is cut at MAX.
 *
 * Because the hash restarts at each chunk start, the scan state of an
 * incomplete chunk is a pure function of its bytes. That is what makes
 * {@link Chunker} resumable from nothing but its pending tail.
 *
 * Only web-standard APIs are used so the module runs unchanged in workerd,
 * Node 22 and browsers.
 *
 * @module
 */

/** Minimum chunk size: 256 KiB. Only the final chunk of an input may be smaller. */
export const CHUNK_MIN_SIZE = 256 * 1024;

/** Target average chunk size: 1 MiB (2^20). Normalization switches masks here. */
export const CHUNK_AVG_SIZE = 1024 * 1024;

/** Maximum chunk size: 4 MiB. A chunk is force-cut when it reaches this size. */
export const CHUNK_MAX_SIZE = 4 * 1024 * 1024;

/** The pending buffer's first size; it doubles up to CHUNK_MAX_SIZE as a chunk grows. */
const MIN_PENDING_BUFFER = 64 * 1024;

/**
 * Cut mask used for offsets in [MIN, AVG): 22 one-bits (log2(AVG) + 2).
 *
 * `0x77BEF7B0` = `0111 0111 1011 1110 1111 0111 1011 0000`.
 *
 * Why the bits sit high and spread out: the gear hash shifts left, so bit k
 * of `h` depends on the last k + 1 bytes only. Using high bits makes the
 * effective sliding window large (bit 30 covers 31 bytes) and interleaving
 * zero bits, as FastCDC does with its 64-bit masks (2016 paper, "Optimizing
 * Hash Judgment": zero-padded masks enlarge the effective sliding window),
 * spreads the sampled bits across that window instead of clustering them in
 * one region. Bit 31 is deliberately clear so that implementations using the
 * FastCDC 2020 "rolling two bytes each time" loop, which tests
 * `MASK << 1` against a hash pre-shifted by one, lose no mask bit.
 */
export const CHUNK_MASK_S = 0x77bef7b0;

/**
 * Cut mask used for offsets in [AVG, MAX): 18 one-bits (log2(AVG) - 2).
 *
 * `0x56BAD7B0` = `0101 0110 1011 1010 1101 0111 1011 0000`, a subset of
 * {@link CHUNK_MASK_S} (as in the paper's MaskS/MaskL pair), bit 31 clear.
 */
export const CHUNK_MASK_L = 0x56bad7b0;

/**
 * Seed of the gear table PRNG (ASCII "DRIV"). Frozen: changing it changes
 * every chunk boundary.
 */
const GEAR_SEED = 0x44524956;

/**
 * Builds the 256-entry gear table with mulberry32 (Tommy Ettinger's 32-bit
 * PRNG, public domain): small, fully specified with 32-bit integer ops, and
 * therefore trivially portable to any other client language.
 *
 * ```
 * a = (a + 0x6D2B79F5) mod 2^32
 * t = imul(a ^ (a >>> 15), a | 1)
 * t = (t + imul(t ^ (t >>> 7), t | 61)) ^ t
 * out = (t ^ (t >>> 14)) >>> 0
 * ```
 */
function buildGear(seed: number): Uint32Array {
	const table = new Uint32Array(256);
	let a = seed | 0;
	for (let i = 0; i < 256; i++) {
		a = (a + 0x6d2b79f5) | 0;
		let t = Math.imul(a ^ (a >>> 15), a | 1);
		t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
		table[i] = (t ^ (t >>> 14)) >>> 0;
	}
	return table;
}

/**
 * The gear table: GEAR[b] is the random 32-bit value rolled in for byte b.
 * A Uint32Array so V8 keeps the entries as raw 32-bit integers in the loop.
 */
const GEAR: Uint32Array = buildGear(GEAR_SEED);

/**
 * Returns a copy of the gear table, for tests and for ports of this module to
 * other languages (which must reproduce it bit for bit).
 */
export function gearTable(): Uint32Array {
	return GEAR.slice();
}

/**
 * Hash left behind by the last {@link scanRange} / {@link scanChunk} call
 * that returned -1 (no cut), for the caller to carry on from. A module-level slot instead of a returned object keeps the hot path free of
 * allocations; JavaScript is single-threaded, so nothing can interleave.
 */
let scanHash = 0;

/**
 * Whether this platform stores typed-array words little-endian (every
 * platform Drive targets does). The fast path reads four bytes per load from
 * a Uint32Array view and takes them apart least-significant byte first, which
 * is only the right byte order on little-endian hosts; elsewhere the plain
 * byte loop runs. Both produce the same cut points.
 */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

/**
 * Hot loop: rolls `src[i..end)` into the gear hash `hash` and returns the
 * index of the first byte after which `(h & mask) === 0`, or -1 with the
 * final hash in {@link scanHash}.
 *
 * Why word loads: in V8 every `Uint8Array` element read carries a bounds and
 * a detached-buffer check; reading aligned 32-bit words and splitting them
 * with shifts removes three quarters of those. The loop is then bound by the
 * `h = (h << 1) + g` dependency chain, so FastCDC 2020's "rolling two bytes
 * each time" adds nothing on top and is not used; the masks still keep bit
 * 31 clear so ports can use that trick.
 */
function scanRange(src: Uint8Array, i: number, end: number, hash: number, mask: number): number {
	if (wasmScanner !== null && src.buffer === wasmScanner.memory.buffer) return wasmScanRange(wasmScanner, src, i, end, hash, mask);
	if (!LITTLE_ENDIAN || end - i < 64) return scanBytes(src, i, end, hash, mask);
	// Why every statement below runs on every call, cut or no cut: V8
	// optimizes this function while it is in its long loop, and optimized
	// code deoptimizes on reaching an operation that has never run (no type
	// feedback). So the byte loops live in scanBytes, the word loop only
	// records which byte matched, the arithmetic after it always runs, and
	// primeScanner runs all of it before V8 first optimizes.
	const base = src.byteOffset;
	// Byte steps up to the next 4-byte aligned address (Uint32Array views
	// must start at a multiple of 4 in the underlying buffer); maybe none.
	const head = (4 - ((base + i) & 3)) & 3;
	const headCut = scanBytes(src, i, i + head, hash, mask);
	if (headCut >= 0) return headCut;
	let h = scanHash;
	i += head;
	const gear = GEAR;
	const nw = (end - i) >>> 2;
	const words = new Uint32Array(src.buffer, base + i, nw);
	let k = 0;
	let lane = 4; // the byte of words[k] that matched; 4 for none
	for (; k < nw; k++) {
		const w = words[k] as number;
		h = ((h << 1) + (gear[w & 0xff] as number)) | 0;
		if ((h & mask) === 0) {
			lane = 0;
			break;
		}
		h = ((h << 1) + (gear[(w >>> 8) & 0xff] as number)) | 0;
		if ((h & mask) === 0) {
			lane = 1;
			break;
		}
		h = ((h << 1) + (gear[(w >>> 16) & 0xff] as number)) | 0;
		if ((h & mask) === 0) {
			lane = 2;
			break;
		}
		h = ((h << 1) + (gear[w >>> 24] as number)) | 0;
		if ((h & mask) === 0) {
			lane = 3;
			break;
		}
	}
	const next = i + 4 * k; // the matching word, or the end of the words
	const cut = next + lane;
	if (lane < 4) return cut;
	// No cut in the words: carry on with the last 0-3 bytes.
	return scanBytes(src, next, end, h, mask);
}

/** {@link scanRange} one byte at a time: short ranges, and the ends of long ones. */
function scanBytes(src: Uint8Array, i: number, end: number, hash: number, mask: number): number {
	const gear = GEAR;
	let h = hash;
	for (; i < end; i++) {
		h = ((h << 1) + (gear[src[i] as number] as number)) | 0;
		if ((h & mask) === 0) return i;
	}
	scanHash = h;
	return -1;
}

// ---------------------------------------------------------------------------
// The WebAssembly scanner (gear-scan.wat)
// ---------------------------------------------------------------------------

/** Where the bytes to scan start in the WebAssembly scanner's memory: after the 1 KiB gear table. */
const GEAR_SCAN_DATA_OFFSET = 1024;

/**
 * Input larger than this is fed to the WebAssembly scanner in slices, so its
 * memory (which never shrinks) stays within this plus the gear table.
 */
const GEAR_SCAN_MAX_PIECE = 4 * 1024 * 1024;

interface WasmScanner {
	memory: WebAssembly.Memory;
	scan: (i: number, end: number, hash: number, mask: number) => number;
	hash: WebAssembly.Global;
	/** `memory` from the data offset on; replaced when the memory grows. */
	bytes: Uint8Array;
}

let wasmScanner: WasmScanner | null = null;

/**
 * Makes {@link Chunker} scan with the WebAssembly build of the gear loop
 * (`gear-scan.wasm`; pass its compiled module, or null to go back to
 * JavaScript). The cuts are the same either way; only the speed differs:
 * the JavaScript loop is fast once V8's optimizing tier compiles it, and in
 * workerd that compile sometimes never happens, leaving chunking in a slow
 * tier for the isolate's life (docs/decisions/0012). The WebAssembly build
 * runs at full speed from its first call. Workers cannot compile WebAssembly from
 * bytes, so the api worker imports the module and installs it here; clients
 * may, or keep the JavaScript loop.
 */
export function useWasmScanner(module: WebAssembly.Module | null): void {
	if (module === null) {
		wasmScanner = null;
		return;
	}
	const exports = new WebAssembly.Instance(module, {}).exports as unknown as Omit<WasmScanner, "bytes">;
	// The table is stored little-endian, as WebAssembly loads it, whatever the host's order.
	const table = new DataView(exports.memory.buffer, 0, GEAR_SCAN_DATA_OFFSET);
	for (let b = 0; b < 256; b++) table.setUint32(b * 4, GEAR[b] as number, true);
	wasmScanner = { ...exports, bytes: new Uint8Array(exports.memory.buffer, GEAR_SCAN_DATA_OFFSET) };
}

/** Which gear loop {@link Chunker} runs: "wasm" once {@link useWasmScanner} installed one. */
export function chunkerScanner(): "wasm" | "js" {
	return wasmScanner === null ? "js" : "wasm";
}

/** Copies `data` into the scanner's memory, growing it if needed; returns the copy. */
function wasmCopy(scanner: WasmScanner, data: Uint8Array): Uint8Array {
	if (data.length > scanner.bytes.length) {
		const pages = Math.ceil((GEAR_SCAN_DATA_OFFSET + data.length - scanner.memory.buffer.byteLength) / 65536);
		scanner.memory.grow(pages);
		scanner.bytes = new Uint8Array(scanner.memory.buffer, GEAR_SCAN_DATA_OFFSET);
	}
	scanner.bytes.set(data);
	return scanner.bytes.subarray(0, data.length);
}

/** {@link scanRange} over a source that lives in the scanner's memory. */
function wasmScanRange(scanner: WasmScanner, src: Uint8Array, i: number, end: number, hash: number, mask: number): number {
	const base = src.byteOffset;
	const cut = scanner.scan(base + i, base + end, hash, mask);
	if (cut >= 0) return cut - base;
	scanHash = scanner.hash.value as number;
	return -1;
}

/**
 * Runs every operation of {@link scanRange} and {@link scanBytes} once, at
 * module load, on a small deterministic buffer: cuts in the head bytes, in
 * each byte of a word, in the tail, and no cut at all.
 *
 * Why: V8 optimizes scanRange *on stack replacement*, in the middle of its
 * first long word loop, before the code after the loop has ever run, and
 * optimized code deoptimizes on every operation without type feedback, on
 * every call (docs/decisions/0012). With the feedback in place first there is
 * nothing to deopt on; jit.test.ts checks that under `node --trace-deopt`.
 * V8 collects feedback only from a function's 9th call on, so one call
 * would not do.
 */
function primeScanner(): void {
	const buf = new Uint8Array(1024);
	let x = 0x9e3779b9;
	for (let i = 0; i < buf.length; i++) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		buf[i] = x & 0xff;
	}
	// Masks of 3 bits cut every ~8 bytes, so starting at each of 64 offsets
	// lands cuts on every position; a 31-bit mask almost never cuts.
	for (let start = 0; start < 64; start++) {
		scanRange(buf, start, buf.length - (start & 3), (start * 0x01000193) | 0, 0x7);
		scanRange(buf, start, buf.length - (start & 3), (start * 0x01000193) | 0, 0x7fffffff);
		scanRange(buf, start, start + 16, 0, 0x7);
	}
	scanHash = 0;
}
primeScanner();

/**
 * Core scanner. Looks for the end of the chunk that begins at `start` in
 * `src`, where the chunk's bytes at offsets [0, `from`) have already been
 * processed and left the hash at `hash`.
 *
 * `start` may be negative: {@link Chunker} passes the new input as `src` with
 * `start = -pending` and `from = pending`, so the pending bytes (already
 * hashed) are never touched and nothing is copied before the cut is known.
 * Only indices >= start + max(from, MIN) are read.
 *
 * @returns the chunk length (in [MIN + 1, MAX]) when a cut is found or the
 * chunk reaches MAX; otherwise -1, with the updated hash in {@link scanHash}.
 */
function scanChunk(src: Uint8Array, start: number, from: number, end: number, hash: number): number {
	const avail = end - start;
	const limit = start + (avail < CHUNK_MAX_SIZE ? avail : CHUNK_MAX_SIZE);
	const normal = start + CHUNK_AVG_SIZE < limit ? start + CHUNK_AVG_SIZE : limit;
	// Sub-minimum skipping: offsets below MIN are never hashed.
	let i = start + (from > CHUNK_MIN_SIZE ? from : CHUNK_MIN_SIZE);
	let h = hash;
	if (i < normal) {
		const cut = scanRange(src, i, normal, h, CHUNK_MASK_S);
		if (cut >= 0) return cut - start + 1;
		h = scanHash;
		i = normal;
	}
	if (i < limit) {
		const cut = scanRange(src, i, limit, h, CHUNK_MASK_L);
		if (cut >= 0) return cut - start + 1;
		h = scanHash;
	}
	if (avail >= CHUNK_MAX_SIZE) return CHUNK_MAX_SIZE;
	scanHash = h;
	return -1;
}

/**
 * Finds the end of the chunk that begins at `buf[start]`, looking only at
 * `buf[start..end)`.
 *
 * @param buf the input bytes.
 * @param start offset of the chunk's first byte.
 * @param end exclusive end of the bytes available so far.
 * @param final whether `end` is the end of the whole input.
 * @returns the chunk length. When no boundary exists in `[start, end)` and
 * the chunk is shorter than {@link CHUNK_MAX_SIZE}: -1 if `final` is false
 * (more data needed), `end - start` if `final` is true (0 for an empty range).
 * Never more than {@link CHUNK_MAX_SIZE}.
 * @throws RangeError if `0 <= start <= end <= buf.length` does not hold.
 */
export function findCutPoint(buf: Uint8Array, start: number, end: number, final: boolean): number {
	if (!(start >= 0 && start <= end && end <= buf.length)) {
		throw new RangeError(`findCutPoint: invalid range [${start}, ${end}) for length ${buf.length}`);
	}
	const cut = scanChunk(buf, start, 0, end, 0);
	if (cut < 0 && final) return end - start;
	return cut;
}

/**
 * Chunk lengths of a complete buffer, in order. Their sum is `data.length`;
 * an empty buffer has no chunks.
 */
export function chunkBoundaries(data: Uint8Array): number[] {
	const lengths: number[] = [];
	const n = data.length;
	let p = 0;
	while (p < n) {
		const cut = scanChunk(data, p, 0, n, 0);
		const len = cut < 0 ? n - p : cut;
		lengths.push(len);
		p += len;
	}
	return lengths;
}

/**
 * Streaming, resumable chunker.
 *
 * Feed any number of byte arrays of any size with {@link Chunker.push}; call
 * {@link Chunker.finish} at the end of input. The chunks produced are
 * byte-identical to {@link chunkBoundaries} over the concatenated input,
 * regardless of how the input was split, and regardless of whether the
 * chunker was persisted via {@link Chunker.tail} and re-created with
 * `new Chunker(tail)` in between.
 *
 * Each input byte is hashed once: the scan position and hash of the pending
 * chunk are kept between pushes. Pending bytes live in one internal buffer of
 * at most {@link CHUNK_MAX_SIZE} bytes, allocated on first use.
 */
export class Chunker {
	/** Pending (incomplete) chunk bytes live in `buf[0..len)`. */
	private buf: Uint8Array<ArrayBuffer> | null = null;
	private len = 0;
	/** Gear hash over the pending bytes past MIN (0 while len <= MIN). */
	private hash = 0;

	/**
	 * @param tail the pending bytes saved from {@link Chunker.tail} of an
	 * earlier chunker, to resume chunking where it stopped.
	 * @throws RangeError if `tail` cannot be a pending chunk (it is at least
	 * {@link CHUNK_MAX_SIZE} long or contains a chunk boundary).
	 */
	constructor(tail?: Uint8Array) {
		if (tail === undefined || tail.length === 0) return;
		// Re-scanning the tail both restores the hash state and validates that
		// it really is an incomplete chunk (a valid tail has no cut in it).
		if (tail.length >= CHUNK_MAX_SIZE || scanChunk(tail, 0, 0, tail.length, 0) >= 0) {
			throw new RangeError("Chunker: tail is not an incomplete chunk");
		}
		this.hash = scanHash;
		this.ensureBuffer(tail.length).set(tail, 0);
		this.len = tail.length;
	}

	/** Number of bytes received but not yet emitted as part of a chunk. */
	get pendingBytes(): number {
		return this.len;
	}

	/**
	 * A copy of the pending incomplete chunk (fewer than
	 * {@link CHUNK_MAX_SIZE} bytes). Persist it and pass it to
	 * `new Chunker(tail)` to resume later.
	 */
	get tail(): Uint8Array<ArrayBuffer> {
		return this.buf === null ? new Uint8Array(0) : this.buf.slice(0, this.len);
	}

	/**
	 * Feeds the next bytes of the input.
	 *
	 * @param data any number of bytes; not retained (it may be reused by the
	 * caller after the call returns).
	 * @returns the chunks completed by these bytes, in order; each is a fresh
	 * array owned by the caller.
	 */
	push(data: Uint8Array): Uint8Array<ArrayBuffer>[] {
		const out: Uint8Array<ArrayBuffer>[] = [];
		for (const view of this.views(data)) out.push(view.slice());
		return out;
	}

	/**
	 * Feeds the next bytes of the input, like {@link Chunker.push}, but yields
	 * each completed chunk as a view instead of a copy: into `data` when the
	 * chunk lies within it, otherwise into the chunker's own buffer (only the
	 * part of a chunk that came with `data` is copied there, to join the
	 * pending bytes). A view is valid only until the generator is resumed, so
	 * the consumer must finish with each chunk first (hash, encrypt, or copy
	 * it). This is what lets a server ingest a stream without allocating a
	 * fresh buffer per block: those buffers are garbage that V8 collects late.
	 *
	 * Consume the generator to the end: stopping early loses the bytes of
	 * `data` after the last chunk yielded.
	 */
	*views(data: Uint8Array): Generator<Uint8Array> {
		if (wasmScanner !== null && data.length > GEAR_SCAN_MAX_PIECE) {
			for (let at = 0; at < data.length; at += GEAR_SCAN_MAX_PIECE) yield* this.views(data.subarray(at, at + GEAR_SCAN_MAX_PIECE));
			return;
		}
		const n = data.length;
		const pending = this.len;
		// Every cut is found before the first chunk is handed out: the
		// WebAssembly scanner's memory is shared by every chunker in the
		// isolate, and another may run while the consumer holds a view.
		const { ends, hash } = this.cuts(data);
		let p = 0;
		for (const end of ends) {
			if (p === 0 && pending > 0) {
				// The pending chunk ends here: join the bytes it still lacks to it.
				const buf = this.ensureBuffer(pending + end);
				buf.set(data.subarray(0, end), pending);
				this.len = 0;
				this.hash = 0;
				yield buf.subarray(0, pending + end);
			} else {
				yield data.subarray(p, end);
			}
			p = end;
		}
		if (p < n) {
			this.hash = hash;
			this.append(p === 0 ? data : data.subarray(p));
		}
	}

	/**
	 * Where the chunks that `data` completes end, as offsets into `data`, and
	 * the hash of the incomplete chunk that follows the last of them. Reads
	 * only; {@link Chunker.views} applies it.
	 */
	private cuts(data: Uint8Array): { ends: number[]; hash: number } {
		// Cuts are found in `scanned` (a copy in the WebAssembly scanner's
		// memory, when one is installed); the chunks handed out are views of `data`.
		const scanned = wasmScanner === null ? data : wasmCopy(wasmScanner, data);
		const n = data.length;
		const ends: number[] = [];
		let p = 0;
		const pending = this.len;
		if (pending > 0) {
			// Continue the pending chunk directly on `data` (start = -pending):
			// nothing is copied until we know where the chunk ends, and the
			// saved hash means no pending byte is hashed twice.
			const cut = scanChunk(scanned, -pending, pending, n, this.hash);
			if (cut < 0) return { ends, hash: scanHash };
			p = cut - pending;
			ends.push(p);
		}
		while (p < n) {
			const cut = scanChunk(scanned, p, 0, n, 0);
			if (cut < 0) return { ends, hash: scanHash };
			p += cut;
			ends.push(p);
		}
		return { ends, hash: 0 };
	}

	/**
	 * Signals the end of input and returns the last chunk, or null when no
	 * bytes are pending. The chunker is then empty and may be reused.
	 */
	finish(): Uint8Array<ArrayBuffer> | null {
		if (this.len === 0 || this.buf === null) return null;
		const last = this.buf.slice(0, this.len);
		this.len = 0;
		this.hash = 0;
		return last;
	}

	/**
	 * The pending buffer, grown to hold at least `needed` bytes. It starts
	 * small and doubles: a small file never pays for zeroing a whole
	 * CHUNK_MAX_SIZE buffer, which dominated the CPU of a 4 KiB upload.
	 */
	private ensureBuffer(needed: number): Uint8Array<ArrayBuffer> {
		const buf = this.buf;
		if (buf !== null && buf.length >= needed) return buf;
		let size = buf === null ? MIN_PENDING_BUFFER : buf.length;
		while (size < needed) size *= 2;
		const grown = new Uint8Array(Math.min(size, CHUNK_MAX_SIZE));
		if (buf !== null) grown.set(buf.subarray(0, this.len));
		this.buf = grown;
		return grown;
	}

	/** Appends bytes known not to complete the pending chunk. */
	private append(data: Uint8Array): void {
		const len = this.len;
		const n = data.length;
		const buf = this.ensureBuffer(len + n);
		if (n <= 16) {
			// Tiny pushes (e.g. byte-at-a-time producers): a plain loop beats
			// the fixed cost of TypedArray.prototype.set.
			for (let i = 0; i < n; i++) buf[len + i] = data[i] as number;
		} else {
			buf.set(data, len);
		}
		this.len = len + n;
	}
}

/**
 * Chunks a byte stream, yielding each chunk as soon as it is complete. The
 * stream's reader lock is released when the generator finishes or is
 * abandoned.
 */
export async function* chunkStream(stream: ReadableStream<Uint8Array>): AsyncGenerator<Uint8Array<ArrayBuffer>> {
	const chunker = new Chunker();
	const reader = stream.getReader();
	try {
		for (;;) {
			const { done, value } = await reader.read();
			if (done) break;
			for (const chunk of chunker.push(value)) yield chunk;
		}
	} finally {
		reader.releaseLock();
	}
	const last = chunker.finish();
	if (last !== null) yield last;
}
