import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
	CHUNK_AVG_SIZE,
	CHUNK_MASK_L,
	CHUNK_MASK_S,
	CHUNK_MAX_SIZE,
	CHUNK_MIN_SIZE,
	Chunker,
	chunkBoundaries,
	chunkerScanner,
	chunkStream,
	findCutPoint,
	gearTable,
	useWasmScanner,
} from "./chunking";

const MiB = 1024 * 1024;

/**
 * Deterministic test data: xorshift32, each word written explicitly as four
 * little-endian bytes so the bytes (and thus the pinned cuts) do not depend
 * on the host's byte order.
 */
function seededBytes(size: number, seed: number): Uint8Array<ArrayBuffer> {
	const out = new Uint8Array(size);
	let x = seed | 0 || 1;
	for (let i = 0; i < size; i += 4) {
		x ^= x << 13;
		x ^= x >>> 17;
		x ^= x << 5;
		out[i] = x & 0xff;
		if (i + 1 < size) out[i + 1] = (x >>> 8) & 0xff;
		if (i + 2 < size) out[i + 2] = (x >>> 16) & 0xff;
		if (i + 3 < size) out[i + 3] = x >>> 24;
	}
	return out;
}

/** Small seeded PRNG for split points (mulberry32), returns [0, 1). */
function rng(seed: number): () => number {
	let a = seed | 0;
	return () => {
		a = (a + 0x6d2b79f5) | 0;
		let t = Math.imul(a ^ (a >>> 15), a | 1);
		t = (t + Math.imul(t ^ (t >>> 7), t | 61)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

/**
 * The specification, written as literally as possible: byte at a time, one
 * mask test per byte, `>>> 0` instead of `| 0`. The module's optimised loops
 * must agree with it exactly.
 */
function referenceBoundaries(data: Uint8Array): number[] {
	const gear = gearTable();
	const lengths: number[] = [];
	let start = 0;
	while (start < data.length) {
		const limit = Math.min(data.length - start, CHUNK_MAX_SIZE);
		let len = limit;
		let h = 0;
		for (let i = CHUNK_MIN_SIZE; i < limit; i++) {
			h = ((h << 1) + (gear[data[start + i] as number] as number)) >>> 0;
			const mask = i < CHUNK_AVG_SIZE ? CHUNK_MASK_S : CHUNK_MASK_L;
			if ((h & mask) === 0) {
				len = i + 1;
				break;
			}
		}
		lengths.push(len);
		start += len;
	}
	return lengths;
}

function popcount(x: number): number {
	let n = 0;
	for (let v = x >>> 0; v !== 0; v >>>= 1) n += v & 1;
	return n;
}

function sum(xs: number[]): number {
	return xs.reduce((a, b) => a + b, 0);
}

/** Asserts that `chunks` are exactly `data` cut at `lengths`. */
function expectChunks(chunks: Uint8Array[], data: Uint8Array, lengths: number[]): void {
	expect(chunks.map((c) => c.length)).toEqual(lengths);
	let offset = 0;
	for (const chunk of chunks) {
		const expected = data.subarray(offset, offset + chunk.length);
		let same = true;
		for (let i = 0; i < chunk.length; i++) {
			if (chunk[i] !== expected[i]) {
				same = false;
				break;
			}
		}
		expect(same, `chunk at offset ${offset} differs`).toBe(true);
		offset += chunk.length;
	}
}

/** Asserts that streaming `data` in pieces of `nextSize()` bytes gives `lengths`. */
function expectPieces(data: Uint8Array, nextSize: () => number, lengths: number[]): void {
	expectChunks(chunkInPieces(data, nextSize), data, lengths);
}

/** Feeds `data` to a Chunker in pieces of `nextSize()` bytes. */
function chunkInPieces(data: Uint8Array, nextSize: () => number): Uint8Array[] {
	const chunker = new Chunker();
	const chunks: Uint8Array[] = [];
	for (let p = 0; p < data.length;) {
		const n = Math.min(nextSize(), data.length - p);
		chunks.push(...chunker.push(data.subarray(p, p + n)));
		p += n;
	}
	const last = chunker.finish();
	if (last !== null) chunks.push(last);
	return chunks;
}

async function sha256Hex(data: Uint8Array): Promise<string> {
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", data));
	return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Shared inputs, generated once (the suite must stay fast).
const DATA_20M = seededBytes(20 * MiB, 0x5eed1234);
const LENGTHS_20M = chunkBoundaries(DATA_20M);

describe("format constants (frozen: they define every client's block boundaries)", () => {
	it("has the documented sizes and masks", () => {
		expect(CHUNK_MIN_SIZE).toBe(256 * 1024);
		expect(CHUNK_AVG_SIZE).toBe(2 ** 20);
		expect(CHUNK_MAX_SIZE).toBe(4 * MiB);
		expect(CHUNK_MASK_S).toBe(0x77bef7b0);
		expect(CHUNK_MASK_L).toBe(0x56bad7b0);
		// Normalization level 2 around log2(avg) = 20.
		expect(popcount(CHUNK_MASK_S)).toBe(22);
		expect(popcount(CHUNK_MASK_L)).toBe(18);
		expect((CHUNK_MASK_L & ~CHUNK_MASK_S) >>> 0).toBe(0);
		expect(CHUNK_MASK_S >>> 31).toBe(0);
	});

	it("pins the gear table", () => {
		const gear = gearTable();
		expect(gear.length).toBe(256);
		expect([gear[0], gear[1], gear[2], gear[127], gear[128], gear[255]]).toEqual([
			0x487d7408, 0xff80ab5c, 0x96e110c1, 0x5e9bdd3f, 0x4ca91133, 0x17c65ed8,
		]);
		// FNV-1a over all 256 entries catches a change anywhere in the table.
		let fnv = 0x811c9dc5;
		for (const v of gear) fnv = Math.imul(fnv ^ v, 0x01000193) >>> 0;
		expect(fnv).toBe(0x5471ac6e);
	});

	it("derives the gear table from mulberry32 seeded with 0x44524956 as documented", () => {
		// Published mulberry32, verbatim structure, independent of the module.
		let a = 0x44524956;
		const next = (): number => {
			let t = (a = (a + 0x6d2b79f5) | 0);
			t = Math.imul(t ^ (t >>> 15), t | 1);
			t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
			return (t ^ (t >>> 14)) >>> 0;
		};
		expect(Array.from(gearTable())).toEqual(Array.from({ length: 256 }, next));
	});

	it("gearTable() returns a copy", () => {
		const gear = gearTable();
		gear[0] = 0;
		expect(gearTable()[0]).toBe(0x487d7408);
	});

	it("pins the cut offsets of 20 MiB of seeded data", () => {
		let offset = 0;
		const cuts = LENGTHS_20M.map((len) => (offset += len));
		expect(cuts).toEqual([
			1327058, 2544111, 3785483, 5298928, 6451671, 7540543, 8086300, 9620766, 10784846, 12032317, 13633723, 15771975, 16941973, 18124167,
			19231588, 20634132, 20971520,
		]);
	});
});

describe("chunkBoundaries", () => {
	it("matches the literal byte-at-a-time reference", () => {
		expect(LENGTHS_20M).toEqual(referenceBoundaries(DATA_20M));
		// Misaligned views exercise the unaligned head of the word-load path.
		for (const shift of [1, 2, 3]) {
			const view = DATA_20M.subarray(shift, shift + 6 * MiB + shift);
			expect(chunkBoundaries(view)).toEqual(referenceBoundaries(view));
		}
	});

	it("keeps every chunk but the last within [min, max] and covers the input", () => {
		expect(sum(LENGTHS_20M)).toBe(DATA_20M.length);
		for (const len of LENGTHS_20M.slice(0, -1)) {
			expect(len).toBeGreaterThan(CHUNK_MIN_SIZE);
			expect(len).toBeLessThanOrEqual(CHUNK_MAX_SIZE);
		}
	});

	it("averages roughly 1 MiB on 64 MiB of random data", () => {
		const lengths = chunkBoundaries(seededBytes(64 * MiB, 0xa11ce));
		const avg = (64 * MiB) / lengths.length;
		expect(avg).toBeGreaterThan(0.6 * MiB);
		expect(avg).toBeLessThan(1.6 * MiB);
	});

	it("handles empty, 1-byte, min and max sized inputs", () => {
		expect(chunkBoundaries(new Uint8Array(0))).toEqual([]);
		expect(chunkBoundaries(new Uint8Array([42]))).toEqual([1]);
		// Up to min bytes nothing is hashed: a single chunk.
		expect(chunkBoundaries(seededBytes(CHUNK_MIN_SIZE, 7))).toEqual([CHUNK_MIN_SIZE]);
		// Constant bytes never match (the hash settles on -GEAR[b], which has
		// mask bits set), so they are force-cut at exactly max.
		expect(chunkBoundaries(new Uint8Array(CHUNK_MAX_SIZE))).toEqual([CHUNK_MAX_SIZE]);
		expect(chunkBoundaries(new Uint8Array(CHUNK_MAX_SIZE + 1))).toEqual([CHUNK_MAX_SIZE, 1]);
		expect(chunkBoundaries(new Uint8Array(2 * CHUNK_MAX_SIZE + 5).fill(0xff))).toEqual([CHUNK_MAX_SIZE, CHUNK_MAX_SIZE, 5]);
		const random = seededBytes(CHUNK_MAX_SIZE, 99);
		const lengths = chunkBoundaries(random);
		expect(sum(lengths)).toBe(CHUNK_MAX_SIZE);
		expect(lengths).toEqual(referenceBoundaries(random));
	});
});

describe("findCutPoint", () => {
	it("needs more data, or takes the rest when final", () => {
		const first = LENGTHS_20M[0] as number;
		expect(findCutPoint(DATA_20M, 0, first - 1, false)).toBe(-1);
		expect(findCutPoint(DATA_20M, 0, first - 1, true)).toBe(first - 1);
		expect(findCutPoint(DATA_20M, 0, first, false)).toBe(first);
		expect(findCutPoint(DATA_20M, 0, DATA_20M.length, false)).toBe(first);
		expect(findCutPoint(DATA_20M, first, DATA_20M.length, false)).toBe(LENGTHS_20M[1]);
		expect(findCutPoint(DATA_20M, 5, 5, true)).toBe(0);
		expect(findCutPoint(DATA_20M, 5, 5, false)).toBe(-1);
	});

	it("never exceeds max", () => {
		const zeros = new Uint8Array(CHUNK_MAX_SIZE + 10);
		expect(findCutPoint(zeros, 0, CHUNK_MAX_SIZE - 1, false)).toBe(-1);
		expect(findCutPoint(zeros, 0, CHUNK_MAX_SIZE, false)).toBe(CHUNK_MAX_SIZE);
		expect(findCutPoint(zeros, 3, zeros.length, false)).toBe(CHUNK_MAX_SIZE);
		expect(findCutPoint(zeros, 3, zeros.length, true)).toBe(CHUNK_MAX_SIZE);
	});

	it("rejects invalid ranges", () => {
		const buf = new Uint8Array(10);
		expect(() => findCutPoint(buf, -1, 5, true)).toThrow(RangeError);
		expect(() => findCutPoint(buf, 6, 5, true)).toThrow(RangeError);
		expect(() => findCutPoint(buf, 0, 11, true)).toThrow(RangeError);
	});
});

/**
 * Compiles WebAssembly from bytes, as Node can. The Workers types this
 * project checks against leave that constructor out, because Workers cannot.
 */
function compileWasm(bytes: Uint8Array): WebAssembly.Module {
	return new (WebAssembly.Module as unknown as new (bytes: Uint8Array) => WebAssembly.Module)(bytes);
}

/** The WebAssembly gear loop the api worker installs (gear-scan.wat). */
const GEAR_SCAN = compileWasm(readFileSync(new URL("./gear-scan.wasm", import.meta.url)));

// Every Chunker test runs with both gear loops: they must agree on every cut.
describe.each(["js", "wasm"] as const)("Chunker (%s gear loop)", (scanner) => {
	beforeAll(() => useWasmScanner(scanner === "wasm" ? GEAR_SCAN : null));
	afterAll(() => useWasmScanner(null));

	it("runs the gear loop it was given", () => {
		expect(chunkerScanner()).toBe(scanner);
	});

	const data12 = DATA_20M.subarray(0, 12 * MiB);
	const lengths12 = chunkBoundaries(data12);

	it("gives no chunks for empty input and one chunk for one byte", () => {
		const empty = new Chunker();
		expect(empty.push(new Uint8Array(0))).toEqual([]);
		expect(empty.finish()).toBeNull();
		const one = new Chunker();
		expect(one.push(new Uint8Array([7]))).toEqual([]);
		expect(one.pendingBytes).toBe(1);
		expect(Array.from(one.tail)).toEqual([7]);
		expect(Array.from(one.finish() ?? [])).toEqual([7]);
		expect(one.pendingBytes).toBe(0);
		expect(one.finish()).toBeNull();
	});

	it("equals whole-buffer chunking with 64 KiB and 5 MiB pieces", () => {
		expectPieces(DATA_20M, () => 64 * 1024, LENGTHS_20M);
		expectPieces(DATA_20M, () => 5 * MiB, LENGTHS_20M);
		expectPieces(DATA_20M, () => DATA_20M.length, LENGTHS_20M);
	});

	it("equals whole-buffer chunking with 7-byte pieces", () => {
		expectPieces(data12, () => 7, lengths12);
	});

	it("equals whole-buffer chunking with 1-byte pieces", () => {
		const data = DATA_20M.subarray(0, 4 * MiB);
		expectPieces(data, () => 1, chunkBoundaries(data));
	});

	it("equals whole-buffer chunking with randomly mixed piece sizes", () => {
		const sizes = [1, 7, 64 * 1024, 5 * MiB];
		for (const seed of [1, 2, 3]) {
			const next = rng(seed);
			const pick = (): number => {
				const r = next();
				// Mostly large pieces, so the 1- and 7-byte ones stay cheap.
				if (r < 0.3) return sizes[Math.floor(next() * sizes.length)] as number;
				return 1 + Math.floor(next() * 3 * MiB);
			};
			expectPieces(DATA_20M, pick, LENGTHS_20M);
		}
	});

	it("yields views with the same chunks as push, without copying a chunk that lies within one piece", () => {
		for (const seed of [21, 22]) {
			const next = rng(seed);
			const chunker = new Chunker();
			const chunks: Uint8Array[] = [];
			let views = 0;
			let inPlace = 0;
			for (let p = 0; p < DATA_20M.length;) {
				const n = Math.min(1 + Math.floor(next() * 6 * MiB), DATA_20M.length - p);
				// A reused input buffer, as a BYOB reader hands out: each view must
				// be consumed before the next piece overwrites it.
				const piece = new Uint8Array(DATA_20M.subarray(p, p + n));
				for (const view of chunker.views(piece)) {
					views++;
					if (view.buffer === piece.buffer) inPlace++;
					chunks.push(view.slice());
				}
				piece.fill(0);
				p += n;
			}
			const last = chunker.finish();
			if (last !== null) chunks.push(last);
			expectChunks(chunks, DATA_20M, LENGTHS_20M);
			expect(views).toBe(LENGTHS_20M.length - (last === null ? 0 : 1));
			expect(inPlace).toBeGreaterThan(0);
		}
	});

	it("resumes from a saved tail at random points", () => {
		for (const seed of [11, 12, 13, 14]) {
			const next = rng(seed);
			let chunker = new Chunker();
			const chunks: Uint8Array[] = [];
			for (let p = 0; p < DATA_20M.length;) {
				const n = Math.min(1 + Math.floor(next() * 2 * MiB), DATA_20M.length - p);
				chunks.push(...chunker.push(DATA_20M.subarray(p, p + n)));
				p += n;
				if (next() < 0.5) {
					// Persist and resume, as a client would across restarts.
					const tail = chunker.tail;
					expect(tail.length).toBe(chunker.pendingBytes);
					expect(tail.length).toBeLessThan(CHUNK_MAX_SIZE);
					chunker = new Chunker(tail.slice());
				}
			}
			const last = chunker.finish();
			if (last !== null) chunks.push(last);
			expectChunks(chunks, DATA_20M, LENGTHS_20M);
		}
	});

	it("resumes from tails shorter than min and around min", () => {
		const first = LENGTHS_20M[0] as number;
		for (const at of [1, CHUNK_MIN_SIZE - 1, CHUNK_MIN_SIZE, CHUNK_MIN_SIZE + 1, first - 1]) {
			const a = new Chunker();
			expect(a.push(DATA_20M.subarray(0, at))).toEqual([]);
			const b = new Chunker(a.tail);
			expect(b.pendingBytes).toBe(at);
			const chunks = b.push(DATA_20M.subarray(at, 8 * MiB));
			const last = b.finish();
			if (last !== null) chunks.push(last);
			const data = DATA_20M.subarray(0, 8 * MiB);
			expectChunks(chunks, data, chunkBoundaries(data));
		}
	});

	it("rejects tails that are not an incomplete chunk", () => {
		const first = LENGTHS_20M[0] as number;
		expect(() => new Chunker(DATA_20M.subarray(0, first))).toThrow(RangeError);
		expect(() => new Chunker(new Uint8Array(CHUNK_MAX_SIZE))).toThrow(RangeError);
		expect(new Chunker(DATA_20M.subarray(0, first - 1)).pendingBytes).toBe(first - 1);
	});

	it("emits chunks the caller owns", () => {
		const input = DATA_20M.slice(0, 3 * MiB);
		const chunker = new Chunker();
		const chunks = chunker.push(input);
		const last = chunker.finish();
		if (last !== null) chunks.push(last);
		input.fill(0);
		expectChunks(chunks, DATA_20M, chunkBoundaries(DATA_20M.subarray(0, 3 * MiB)));
	});

	it.each([
		[3, 3],
		[5, 2],
		[2, 7],
	])("keeps its cuts while other chunkers run between the views it hands out (%i and %i MiB pieces)", (pieceA, pieceB) => {
		// Two uploads in one isolate interleave at every await; with the
		// WebAssembly loop they share its memory, which the other one may
		// also grow (pieces over 4 MiB are scanned in slices).
		const a = new Chunker();
		const b = new Chunker();
		const seen: Uint8Array[] = [];
		let other = 0;
		let offB = 0;
		for (let off = 0; off < 12 * MiB; off += pieceA * MiB) {
			for (const view of a.views(DATA_20M.subarray(off, Math.min(12 * MiB, off + pieceA * MiB)))) {
				seen.push(view.slice());
				const piece = DATA_20M.subarray(offB % (12 * MiB), (offB % (12 * MiB)) + pieceB * MiB);
				offB += pieceB * MiB;
				for (const chunk of b.views(piece)) other += chunk.length > 0 ? 1 : 0;
			}
		}
		const last = a.finish();
		if (last !== null) seen.push(last);
		expectChunks(seen, data12, lengths12);
		expect(other).toBeGreaterThan(0);
	});
});

/** scripts/build-wasm.mjs, which assembles gear-scan.wat with wabt. */
async function buildScript(): Promise<{ gearScanSource(): string; assembleGearScan(source?: string): Promise<Uint8Array> }> {
	// @ts-expect-error: a plain .mjs script without types
	return import("../../scripts/build-wasm.mjs");
}

describe("the WebAssembly gear loop", () => {
	afterAll(() => useWasmScanner(null));

	it("is the binary that gear-scan.wat assembles to", async () => {
		const committed = new Uint8Array(readFileSync(new URL("./gear-scan.wasm", import.meta.url)));
		expect(committed).toEqual(await (await buildScript()).assembleGearScan());
	});

	it("is what the chunker runs once installed: a loop that hashes differently cuts differently", async () => {
		// Without this, a chunker that quietly kept scanning with JavaScript
		// would pass every "wasm" test above.
		const build = await buildScript();
		const source = build.gearScanSource();
		const doubled = source.replace("(i32.shl (local.get $h) (i32.const 1))", "(i32.shl (local.get $h) (i32.const 2))");
		expect(doubled).not.toBe(source);
		const wrong = compileWasm(await build.assembleGearScan(doubled));
		useWasmScanner(wrong);
		try {
			const chunker = new Chunker();
			const lengths = [...chunker.views(DATA_20M)].map((chunk) => chunk.length);
			expect(lengths).not.toEqual(LENGTHS_20M.slice(0, lengths.length));
		} finally {
			useWasmScanner(null);
		}
	});

	it("chunks a piece larger than one slice (4 MiB) like whole-buffer chunking", () => {
		useWasmScanner(GEAR_SCAN);
		const chunker = new Chunker();
		const chunks = chunker.push(DATA_20M);
		const last = chunker.finish();
		if (last !== null) chunks.push(last);
		expectChunks(chunks, DATA_20M, LENGTHS_20M);
	});
});

describe("chunkStream", () => {
	it("yields the same chunks as chunkBoundaries", async () => {
		const data = DATA_20M.subarray(0, 9 * MiB);
		const pieceSize = 1_000_003;
		let p = 0;
		const stream = new ReadableStream<Uint8Array>({
			pull(controller) {
				if (p >= data.length) {
					controller.close();
					return;
				}
				controller.enqueue(data.slice(p, p + pieceSize));
				p += pieceSize;
			},
		});
		const chunks: Uint8Array[] = [];
		for await (const chunk of chunkStream(stream)) chunks.push(chunk);
		expectChunks(chunks, data, chunkBoundaries(data));
	});

	it("yields nothing for an empty stream", async () => {
		const stream = new ReadableStream<Uint8Array>({
			start(controller) {
				controller.close();
			},
		});
		const chunks: Uint8Array[] = [];
		for await (const chunk of chunkStream(stream)) chunks.push(chunk);
		expect(chunks).toEqual([]);
	});
});

describe("content-defined property", () => {
	it("changes at most 2 chunks when 1 byte is inserted at offset 0 of 32 MiB", async () => {
		const original = seededBytes(32 * MiB, 0xc0ffee);
		const shifted = new Uint8Array(original.length + 1);
		shifted[0] = 0x5a;
		shifted.set(original, 1);

		const hashes = async (data: Uint8Array): Promise<string[]> => {
			const out: string[] = [];
			let offset = 0;
			for (const len of chunkBoundaries(data)) {
				out.push(await sha256Hex(data.subarray(offset, offset + len)));
				offset += len;
			}
			return out;
		};
		const before = new Set(await hashes(original));
		const after = await hashes(shifted);
		const changed = after.filter((h) => !before.has(h));
		expect(before.size).toBeGreaterThan(10);
		expect(changed.length).toBeGreaterThanOrEqual(1);
		expect(changed.length).toBeLessThanOrEqual(2);
	});
});
