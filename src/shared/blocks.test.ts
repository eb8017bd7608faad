import { describe, expect, it } from "vitest";
import {
	BLOCK_FLAG_COMPRESSED,
	BLOCK_FORMAT_VERSION,
	BLOCK_HEADER_FIXED_BYTES,
	BLOCK_IV_BYTES,
	BLOCK_MAGIC,
	BLOCK_TAG_BYTES,
	BlockIntegrityError,
	type BlockIntegrityReason,
	blockObjectKey,
	decodeBlock,
	encodeBlock,
	MAX_BLOCK_PLAINTEXT_BYTES,
	readBlockHeader,
	shouldCompress,
} from "./blocks";
import { generateKeyRingSecret, KeyRing, parseKeyRing, randomBytes, sha256Hex, toBase64Url } from "./crypto";

const ring = parseKeyRing(generateKeyRingSecret("k1"));
const MiB = 1024 * 1024;

function compressibleText(bytes: number, marker = ""): Uint8Array {
	const lines: string[] = [];
	let size = 0;
	for (let i = 0; size < bytes; i++) {
		const line = `${i}\tuser-${i % 977}@example.com\tstatus=${i % 3 === 0 ? "active" : "idle"}\t${marker}\n`;
		lines.push(line);
		size += line.length;
	}
	return new TextEncoder().encode(lines.join("")).subarray(0, bytes);
}

async function roundTrip(plain: Uint8Array, r: KeyRing = ring) {
	const hash = await sha256Hex(plain);
	const stored = await encodeBlock(plain, hash, r);
	const decoded = await decodeBlock(stored, hash, r);
	expect(decoded.length).toBe(plain.length);
	expect(sameBytes(decoded, plain)).toBe(true);
	return { hash, stored, header: readBlockHeader(stored) };
}

async function expectIntegrityError(promise: Promise<unknown>, reason: BlockIntegrityReason) {
	const error = await promise.then(
		() => null,
		(e: unknown) => e,
	);
	expect(error).toBeInstanceOf(BlockIntegrityError);
	expect((error as BlockIntegrityError).reason).toBe(reason);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
	return a.length === b.length && a.every((v, i) => v === b[i]);
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
	outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
		for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
		return i;
	}
	return -1;
}

describe("blockObjectKey", () => {
	it("fans blocks out by the first two hex digits", async () => {
		const hash = await sha256Hex("abc");
		expect(blockObjectKey(hash)).toBe(`blocks/ba/${hash}`);
	});

	it("rejects non-canonical hashes", () => {
		expect(() => blockObjectKey("BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD")).toThrow(TypeError);
		expect(() => blockObjectKey("../etc/passwd")).toThrow(TypeError);
	});
});

describe("encodeBlock / decodeBlock", () => {
	it("round-trips an empty block", async () => {
		const { stored, header } = await roundTrip(new Uint8Array(0));
		expect(header.compressed).toBe(false);
		expect(stored.length).toBe(BLOCK_HEADER_FIXED_BYTES + 2 + BLOCK_IV_BYTES + BLOCK_TAG_BYTES);
	});

	it("round-trips a 1-byte block", async () => {
		const { header } = await roundTrip(new Uint8Array([0x42]));
		expect(header.compressed).toBe(false);
	});

	it("round-trips 1 MiB of random data, stored uncompressed", async () => {
		const { stored, header } = await roundTrip(randomBytes(MiB));
		expect(header.compressed).toBe(false);
		expect(stored.length).toBe(MiB + header.headerLength + BLOCK_TAG_BYTES);
	});

	it("round-trips 4 MiB of text, stored compressed and smaller", async () => {
		const plain = compressibleText(4 * MiB);
		const { stored, header } = await roundTrip(plain);
		expect(header.compressed).toBe(true);
		expect(stored.length).toBeLessThan(plain.length / 4);
	});

	it("round-trips a small compressible block (sampled whole)", async () => {
		const plain = compressibleText(10_000);
		const { stored, header } = await roundTrip(plain);
		expect(header.compressed).toBe(true);
		expect(stored.length).toBeLessThan(plain.length);
	});

	it("round-trips 8 MiB of random data, the maximum, stored uncompressed", async () => {
		const plain = randomBytes(MAX_BLOCK_PLAINTEXT_BYTES);
		expect(plain.length).toBe(8 * MiB);
		const { header } = await roundTrip(plain);
		expect(header.compressed).toBe(false);
	});

	it("rejects blocks over the maximum size", async () => {
		const plain = new Uint8Array(MAX_BLOCK_PLAINTEXT_BYTES + 1);
		await expect(encodeBlock(plain, await sha256Hex(plain), ring)).rejects.toThrow(RangeError);
	});

	it("refuses to encode under a hash the plaintext does not have", async () => {
		await expectIntegrityError(encodeBlock(new Uint8Array([1]), await sha256Hex("other"), ring), "hash");
		await expect(encodeBlock(new Uint8Array([1]), "not-a-hash", ring)).rejects.toThrow(TypeError);
	});

	it("writes the documented header", async () => {
		const { stored, header } = await roundTrip(compressibleText(100_000));
		expect([...stored.subarray(0, 3)]).toEqual([...BLOCK_MAGIC]);
		expect(new TextDecoder().decode(stored.subarray(0, 3))).toBe("DRB");
		expect(stored[3]).toBe(BLOCK_FORMAT_VERSION);
		expect(stored[4]).toBe(BLOCK_FLAG_COMPRESSED);
		expect(stored[5]).toBe(2);
		expect(new TextDecoder().decode(stored.subarray(6, 8))).toBe("k1");
		expect(header).toMatchObject({ version: 1, flags: 1, compressed: true, keyId: "k1", headerLength: 20 });
		expect([...header.iv]).toEqual([...stored.subarray(8, 20)]);
	});

	it("uses a fresh IV for every encoding", async () => {
		const plain = new TextEncoder().encode("same bytes");
		const hash = await sha256Hex(plain);
		const [a, b] = await Promise.all([encodeBlock(plain, hash, ring), encodeBlock(plain, hash, ring)]);
		expect(sameBytes(readBlockHeader(a).iv, readBlockHeader(b).iv)).toBe(false);
		expect(sameBytes(a, b)).toBe(false);
	});

	it("never stores a plaintext marker, compressed or not", async () => {
		const marker = new TextEncoder().encode("SECRET-MARKER-7f3a9c");
		const marked = compressibleText(200_000, "SECRET-MARKER-7f3a9c");
		const raw = new Uint8Array(64 * 1024);
		raw.set(randomBytes(raw.length));
		raw.set(marker, 1000);
		for (const plain of [marked, raw, marker]) {
			expect(indexOf(plain, marker)).toBeGreaterThanOrEqual(0);
			const { stored } = await roundTrip(plain);
			expect(indexOf(stored, marker)).toBe(-1);
		}
	});
});

describe("tamper detection", () => {
	it("rejects a flip of any single byte in header, IV, ciphertext or tag", async () => {
		for (const plain of [new TextEncoder().encode("hello, drive"), compressibleText(3000)]) {
			const hash = await sha256Hex(plain);
			const stored = await encodeBlock(plain, hash, ring);
			for (let i = 0; i < stored.length; i++) {
				const tampered = stored.slice();
				tampered[i] = (tampered[i] ?? 0) ^ 0x01;
				const error = await decodeBlock(tampered, hash, ring).then(
					() => null,
					(e: unknown) => e,
				);
				expect(error, `byte ${i}`).toBeInstanceOf(BlockIntegrityError);
			}
		}
	});

	it("classifies failures by reason", async () => {
		const plain = new TextEncoder().encode("hello, drive");
		const hash = await sha256Hex(plain);
		const stored = await encodeBlock(plain, hash, ring);
		const flip = (i: number, mask = 0x01) => {
			const t = stored.slice();
			t[i] = (t[i] ?? 0) ^ mask;
			return t;
		};
		await expectIntegrityError(decodeBlock(flip(0), hash, ring), "format"); // magic
		await expectIntegrityError(decodeBlock(flip(3), hash, ring), "format"); // version
		await expectIntegrityError(decodeBlock(flip(4, 0x80), hash, ring), "format"); // unknown flag
		await expectIntegrityError(decodeBlock(flip(4), hash, ring), "auth"); // known flag: caught by AAD
		await expectIntegrityError(decodeBlock(flip(5, 0xff), hash, ring), "format"); // key id length
		await expectIntegrityError(decodeBlock(flip(6), hash, ring), "unknown_key"); // "k1" -> "j1"
		await expectIntegrityError(decodeBlock(flip(10), hash, ring), "auth"); // IV
		await expectIntegrityError(decodeBlock(flip(stored.length - 1), hash, ring), "auth"); // tag
		await expectIntegrityError(decodeBlock(stored.subarray(0, stored.length - 1), hash, ring), "auth");
		await expectIntegrityError(decodeBlock(stored.subarray(0, 20), hash, ring), "format");
		await expectIntegrityError(decodeBlock(new Uint8Array(0), hash, ring), "format");
	});

	it("fails with reason auth when read under the wrong address", async () => {
		// The per-block key and the AAD both bind the hash, so a wrong address is
		// caught by GCM before any plaintext exists to hash.
		const plain = new TextEncoder().encode("block A");
		const stored = await encodeBlock(plain, await sha256Hex(plain), ring);
		await expectIntegrityError(decodeBlock(stored, await sha256Hex("block B"), ring), "auth");
	});

	it("rejects malformed hash arguments as a caller error", async () => {
		const plain = new Uint8Array([1, 2, 3]);
		const stored = await encodeBlock(plain, await sha256Hex(plain), ring);
		await expect(decodeBlock(stored, "xyz", ring)).rejects.toThrow(TypeError);
	});

	it("rejects a block written under a key the ring does not hold", async () => {
		const other = parseKeyRing(generateKeyRingSecret("k9"));
		const plain = new TextEncoder().encode("elsewhere");
		const hash = await sha256Hex(plain);
		await expectIntegrityError(decodeBlock(await encodeBlock(plain, hash, other), hash, ring), "unknown_key");
	});

	it("rejects a block whose key id is known but whose key bytes differ", async () => {
		const impostor = parseKeyRing(generateKeyRingSecret("k1"));
		const plain = new TextEncoder().encode("same id, other key");
		const hash = await sha256Hex(plain);
		await expectIntegrityError(decodeBlock(await encodeBlock(plain, hash, impostor), hash, ring), "auth");
	});
});

describe("key rotation", () => {
	it("decodes blocks written under the previous key after a new key is put first", async () => {
		const oldSecret = generateKeyRingSecret("2025a");
		const before = parseKeyRing(oldSecret);
		const plain = compressibleText(50_000);
		const hash = await sha256Hex(plain);
		const oldStored = await encodeBlock(plain, hash, before);

		const after = parseKeyRing(`${generateKeyRingSecret("2026a")},${oldSecret}`);
		expect(after.currentKeyId).toBe("2026a");
		expect(sameBytes(await decodeBlock(oldStored, hash, after), plain)).toBe(true);

		const newStored = await encodeBlock(plain, hash, after);
		expect(readBlockHeader(newStored).keyId).toBe("2026a");
		expect(sameBytes(await decodeBlock(newStored, hash, after), plain)).toBe(true);
		// Retiring the old key strands its blocks, loudly.
		const retired = new KeyRing([{ id: "2026a", key: new Uint8Array(32) }]);
		await expectIntegrityError(decodeBlock(oldStored, hash, retired), "unknown_key");
	});

	it("accepts the longest allowed key id", async () => {
		const id = "A-z_0123456789ab";
		const r = parseKeyRing(`${id}:${toBase64Url(randomBytes(32))}`);
		const { header } = await roundTrip(new Uint8Array([1, 2, 3]), r);
		expect(header.keyId).toBe(id);
		expect(header.headerLength).toBe(BLOCK_HEADER_FIXED_BYTES + 16 + BLOCK_IV_BYTES);
	});
});

describe("shouldCompress", () => {
	it("declines empty, tiny and random data", async () => {
		expect(await shouldCompress(new Uint8Array(0))).toBe(false);
		expect(await shouldCompress(new Uint8Array([7]))).toBe(false);
		expect(await shouldCompress(randomBytes(1000))).toBe(false);
		expect(await shouldCompress(randomBytes(2 * MiB))).toBe(false);
	});

	it("accepts text and zeros", async () => {
		expect(await shouldCompress(compressibleText(1000))).toBe(true);
		expect(await shouldCompress(compressibleText(2 * MiB))).toBe(true);
		expect(await shouldCompress(new Uint8Array(MiB))).toBe(true);
	});

	it("accepts periodic bytes whose histogram looks random (0..255 repeating: 8 bits per byte)", async () => {
		const periodic = Uint8Array.from({ length: MiB }, (_, i) => i & 0xff);
		expect(await shouldCompress(periodic)).toBe(true);
		const { header } = await roundTrip(periodic);
		expect(header.compressed).toBe(true);
	});

	it("accepts high-entropy text that deflate still shrinks (base64 of random bytes, 6 bits per byte)", async () => {
		// Above any naive "looks random" cut, below the entropy gate: deflate decides.
		const b64 = new TextEncoder().encode(
			btoa(String.fromCharCode(...randomBytes(48 * 1024)))
				.repeat(40)
				.slice(0, 2 * MiB),
		);
		expect(await shouldCompress(b64)).toBe(true);
		const { header } = await roundTrip(b64);
		expect(header.compressed).toBe(true);
	});

	it("samples the start, middle and end of large blocks", async () => {
		// Compressible only outside the sampled slices: the sample says no.
		const slice = 16 * 1024;
		const plain = new Uint8Array(MiB);
		plain.set(randomBytes(slice), 0);
		plain.set(randomBytes(slice), (MiB - slice) / 2);
		plain.set(randomBytes(slice), MiB - slice);
		expect(await shouldCompress(plain)).toBe(false);
		const { header } = await roundTrip(plain);
		expect(header.compressed).toBe(false);

		// Only the middle is random: two compressible slices of three still pass.
		const mostly = new Uint8Array(MiB);
		mostly.set(randomBytes(slice), (MiB - slice) / 2);
		expect(await shouldCompress(mostly)).toBe(true);
	});

	it("never stores a compressed block larger than the raw one", async () => {
		// Zeros in the sampled slices, random everywhere else.
		const slice = 16 * 1024;
		const plain = randomBytes(MiB);
		plain.fill(0, 0, slice);
		plain.fill(0, (MiB - slice) / 2, (MiB + slice) / 2);
		plain.fill(0, MiB - slice);
		expect(await shouldCompress(plain)).toBe(true);
		const { header, stored } = await roundTrip(plain);
		// The zero regions alone make this smaller, so it is compressed; what
		// matters is the stored result is never larger than raw.
		expect(stored.length).toBeLessThanOrEqual(plain.length + header.headerLength + BLOCK_TAG_BYTES);
	});
});
