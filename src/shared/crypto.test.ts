import { describe, expect, it, vi } from "vitest";
import {
	BLOCK_KEY_HKDF_SALT,
	DUMMY_PASSWORD_HASH,
	fromBase64Url,
	fromHex,
	generateKeyRingSecret,
	hashPassword,
	isSha256Hex,
	KeyRing,
	needsRehash,
	parseKeyRing,
	PBKDF2_DEFAULT_ITERATIONS,
	PBKDF2_MAX_ITERATIONS,
	randomBytes,
	sha256,
	sha256Hex,
	timingSafeEqual,
	toBase64Url,
	toHex,
	verifyPassword,
	verifyPasswordAgainstDummy,
} from "./crypto";

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
const ABC_SHA256 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

describe("hashing and encodings", () => {
	it("computes SHA-256 (FIPS 180-2 vectors)", async () => {
		expect(await sha256Hex("")).toBe(EMPTY_SHA256);
		expect(await sha256Hex("abc")).toBe(ABC_SHA256);
		expect(await sha256Hex(new TextEncoder().encode("abc"))).toBe(ABC_SHA256);
		expect(toHex(await sha256(new Uint8Array(0)))).toBe(EMPTY_SHA256);
	});

	it("hashes views over a larger buffer by their own bytes only", async () => {
		const big = new TextEncoder().encode("xxabcxx");
		expect(await sha256Hex(big.subarray(2, 5))).toBe(ABC_SHA256);
	});

	it("round-trips hex and rejects malformed input", () => {
		const bytes = new Uint8Array([0, 1, 0x7f, 0x80, 0xfe, 0xff]);
		expect(toHex(bytes)).toBe("00017f80feff");
		expect(fromHex("00017f80feff")).toEqual(bytes);
		expect(fromHex("00017F80FEFF")).toEqual(bytes);
		expect(fromHex("")).toEqual(new Uint8Array(0));
		expect(() => fromHex("abc")).toThrow(/odd/);
		expect(() => fromHex("zz")).toThrow(/invalid/);
		expect(() => fromHex("0g")).toThrow(/invalid/);
		expect(() => fromHex(" 0")).toThrow(/invalid/);
	});

	it("recognises canonical SHA-256 hex only", () => {
		expect(isSha256Hex(EMPTY_SHA256)).toBe(true);
		expect(isSha256Hex(EMPTY_SHA256.toUpperCase())).toBe(false);
		expect(isSha256Hex(EMPTY_SHA256.slice(1))).toBe(false);
		expect(isSha256Hex(`${EMPTY_SHA256}0`)).toBe(false);
		expect(isSha256Hex(`${EMPTY_SHA256.slice(1)}g`)).toBe(false);
	});

	it("encodes base64url per RFC 4648 test vectors", () => {
		const enc = (s: string) => toBase64Url(new TextEncoder().encode(s));
		expect(enc("")).toBe("");
		expect(enc("f")).toBe("Zg");
		expect(enc("fo")).toBe("Zm8");
		expect(enc("foo")).toBe("Zm9v");
		expect(enc("foob")).toBe("Zm9vYg");
		expect(enc("fooba")).toBe("Zm9vYmE");
		expect(enc("foobar")).toBe("Zm9vYmFy");
		expect(toBase64Url(new Uint8Array([0xfb, 0xff, 0xbf]))).toBe("-_-_");
	});

	it("round-trips base64url for every length and tolerates padding only", () => {
		for (let n = 0; n < 40; n++) {
			const bytes = randomBytes(n);
			expect(fromBase64Url(toBase64Url(bytes))).toEqual(bytes);
		}
		expect(fromBase64Url("Zg==")).toEqual(new Uint8Array([0x66]));
		expect(fromBase64Url("Zm8=")).toEqual(new Uint8Array([0x66, 0x6f]));
		expect(() => fromBase64Url("Z")).toThrow(/length/);
		expect(() => fromBase64Url("+/+/")).toThrow(/character/);
		expect(() => fromBase64Url("Zm9v!")).toThrow();
		expect(() => fromBase64Url("Zg=")).toThrow();
		expect(() => fromBase64Url("Zé")).toThrow(/character/);
	});

	it("produces random bytes of the requested length, beyond the 64 KiB getRandomValues limit", () => {
		expect(randomBytes(0).length).toBe(0);
		const big = randomBytes(200_000);
		expect(big.length).toBe(200_000);
		// The last chunk must be filled too.
		expect(big.subarray(199_000).some((b) => b !== 0)).toBe(true);
		expect(toHex(randomBytes(16))).not.toBe(toHex(randomBytes(16)));
		expect(() => randomBytes(-1)).toThrow(RangeError);
	});

	it("compares bytes", () => {
		expect(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true);
		expect(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false);
		expect(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false);
		expect(timingSafeEqual(new Uint8Array(0), new Uint8Array(0))).toBe(true);
	});
});

describe("password hashing", () => {
	it("uses the Workers PBKDF2 ceiling of 100,000 iterations by default", () => {
		expect(PBKDF2_DEFAULT_ITERATIONS).toBe(100_000);
		expect(PBKDF2_MAX_ITERATIONS).toBe(100_000);
	});

	it("hashes to the self-describing format and verifies", async () => {
		const stored = await hashPassword("correct horse battery staple");
		const parts = stored.split("$");
		expect(parts).toHaveLength(4);
		expect(parts[0]).toBe("pbkdf2-sha256");
		expect(Number(parts[1])).toBe(100_000);
		expect(fromBase64Url(parts[2] ?? "")).toHaveLength(16);
		expect(fromBase64Url(parts[3] ?? "")).toHaveLength(32);
		expect(stored).toMatch(/^pbkdf2-sha256\$100000\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/);

		expect(await verifyPassword("correct horse battery staple", stored)).toBe(true);
		expect(await verifyPassword("correct horse battery stapl", stored)).toBe(false);
		expect(await verifyPassword("", stored)).toBe(false);
		expect(needsRehash(stored)).toBe(false);
	});

	it("salts every hash", async () => {
		const [a, b] = await Promise.all([hashPassword("pw", { iterations: 1000 }), hashPassword("pw", { iterations: 1000 })]);
		expect(a).not.toBe(b);
		expect(await verifyPassword("pw", a)).toBe(true);
		expect(await verifyPassword("pw", b)).toBe(true);
	});

	it("matches a published PBKDF2-HMAC-SHA256 test vector", async () => {
		// P = "passwordPASSWORDpassword", S = "saltSALTsaltSALTsaltSALTsaltSALTsalt", c = 4096, dkLen = 40.
		const salt = toBase64Url(new TextEncoder().encode("saltSALTsaltSALTsaltSALTsaltSALTsalt"));
		const hash = toBase64Url(fromHex("348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9"));
		const stored = `pbkdf2-sha256$4096$${salt}$${hash}`;
		expect(await verifyPassword("passwordPASSWORDpassword", stored)).toBe(true);
		expect(await verifyPassword("passwordPASSWORDpasswore", stored)).toBe(false);
	});

	it("normalises passwords to NFC", async () => {
		const stored = await hashPassword("caf\u00e9", { iterations: 1000 });
		expect(await verifyPassword("cafe\u0301", stored)).toBe(true);
	});

	it("honours a custom iteration count and flags weaker hashes for rehash", async () => {
		const weak = await hashPassword("pw", { iterations: 1000 });
		expect(weak.split("$")[1]).toBe("1000");
		expect(await verifyPassword("pw", weak)).toBe(true);
		expect(needsRehash(weak)).toBe(true);
	});

	it("refuses iteration counts production would reject", async () => {
		await expect(hashPassword("pw", { iterations: 210_000 })).rejects.toThrow(RangeError);
		await expect(hashPassword("pw", { iterations: 0 })).rejects.toThrow(RangeError);
		await expect(hashPassword("pw", { iterations: 1.5 })).rejects.toThrow(RangeError);
	});

	it("treats malformed or unsupported stored hashes as a failed login, not an exception", async () => {
		const good = await hashPassword("pw", { iterations: 1000 });
		const [, , salt, hash] = good.split("$");
		const bad = [
			"",
			"plain",
			`bcrypt$1000$${salt}$${hash}`,
			`pbkdf2-sha256$1000$${salt}`,
			`pbkdf2-sha256$1000$${salt}$${hash}$extra`,
			`pbkdf2-sha256$01000$${salt}$${hash}`,
			`pbkdf2-sha256$-1$${salt}$${hash}`,
			`pbkdf2-sha256$210000$${salt}$${hash}`,
			`pbkdf2-sha256$1000$${salt}$not*base64`,
			`pbkdf2-sha256$1000$$${hash}`,
		];
		for (const stored of bad) {
			expect(await verifyPassword("pw", stored)).toBe(false);
			expect(needsRehash(stored)).toBe(true);
		}
	});

	it("offers a dummy hash that costs a full verification and never matches", async () => {
		expect(DUMMY_PASSWORD_HASH.split("$")[1]).toBe(String(PBKDF2_DEFAULT_ITERATIONS));
		// Well-formed with default parameters, so verification does the full work.
		expect(needsRehash(DUMMY_PASSWORD_HASH)).toBe(false);
		const derive = vi.spyOn(crypto.subtle, "deriveBits");
		try {
			expect(await verifyPasswordAgainstDummy("anything")).toBe(false);
			expect(derive).toHaveBeenCalledTimes(1);
			const params = derive.mock.calls[0]?.[0];
			expect(params).toMatchObject({ name: "PBKDF2", iterations: PBKDF2_DEFAULT_ITERATIONS });
		} finally {
			derive.mockRestore();
		}
	});
});

describe("key ring", () => {
	const key = (fill: number) => toBase64Url(new Uint8Array(32).fill(fill));

	it("parses a single key and generated secrets", () => {
		const ring = parseKeyRing(`k1:${key(1)}`);
		expect(ring.currentKeyId).toBe("k1");
		expect(ring.keyIds).toEqual(["k1"]);
		expect(ring.has("k1")).toBe(true);
		expect(ring.has("k2")).toBe(false);

		const secret = generateKeyRingSecret();
		expect(secret).toMatch(/^k1:[A-Za-z0-9_-]{43}$/);
		expect(parseKeyRing(secret).currentKeyId).toBe("k1");
		expect(generateKeyRingSecret("2026-01_a").startsWith("2026-01_a:")).toBe(true);
		expect(generateKeyRingSecret()).not.toBe(secret);
		expect(() => generateKeyRingSecret("bad id")).toThrow();
	});

	it("puts the first key first and keeps the others for old blocks", () => {
		const ring = parseKeyRing(` k2:${key(2)},\n k1:${key(1)}=\n`);
		expect(ring.currentKeyId).toBe("k2");
		expect(ring.keyIds).toEqual(["k2", "k1"]);
	});

	it("rejects malformed secrets with a clear error that does not echo key material", () => {
		const secretKey = key(7);
		const cases: [string, RegExp][] = [
			["", /empty/],
			[" ", /empty/],
			[`k1:${secretKey},`, /entry 2 is empty/],
			[secretKey, /no ":"/],
			[`:${secretKey}`, /invalid key id/],
			[`bad id:${secretKey}`, /invalid key id/],
			[`${"x".repeat(17)}:${secretKey}`, /invalid key id/],
			[`k1:${secretKey.slice(0, -1)}*`, /base64url/],
			[`k1:${toBase64Url(new Uint8Array(16))}`, /16 bytes, expected 32/],
			[`k1:`, /0 bytes/],
			[`k1:${secretKey},k1:${key(8)}`, /duplicate/],
		];
		for (const [secret, message] of cases) {
			let error: unknown;
			try {
				parseKeyRing(secret);
			} catch (e) {
				error = e;
			}
			expect(error, secret).toBeInstanceOf(Error);
			expect((error as Error).message).toMatch(message);
			expect((error as Error).message).not.toContain(secretKey);
		}
	});

	it("validates entries passed to the constructor", () => {
		expect(() => new KeyRing([])).toThrow(/at least one/);
		expect(() => new KeyRing([{ id: "k1", key: new Uint8Array(31) }])).toThrow(/32 bytes/);
		expect(() => new KeyRing([{ id: "k/1", key: new Uint8Array(32) }])).toThrow(/invalid key id/);
	});

	it("derives the documented per-block HKDF key", async () => {
		const master = randomBytes(32);
		const ring = new KeyRing([{ id: "k1", key: master }]);
		const hash = await sha256Hex("block");
		const blockKey = await ring.deriveBlockKey("k1", hash);

		// Independently derive HKDF-SHA256(master, "drive/block/v1", hash) as raw bits.
		expect(new TextDecoder().decode(BLOCK_KEY_HKDF_SALT)).toBe("drive/block/v1");
		const base = await crypto.subtle.importKey("raw", master, "HKDF", false, ["deriveBits"]);
		const bits = await crypto.subtle.deriveBits(
			{ name: "HKDF", hash: "SHA-256", salt: new TextEncoder().encode("drive/block/v1"), info: fromHex(hash) },
			base,
			256,
		);
		const expected = await crypto.subtle.importKey("raw", bits, "AES-GCM", false, ["encrypt"]);
		const iv = new Uint8Array(12);
		const msg = new TextEncoder().encode("probe");
		const a = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, blockKey, msg));
		const b = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, expected, msg));
		expect(toHex(a)).toBe(toHex(b));
	});

	it("derives different keys per block and per master key", async () => {
		const ring = new KeyRing([
			{ id: "a", key: randomBytes(32) },
			{ id: "b", key: randomBytes(32) },
		]);
		const [h1, h2] = await Promise.all([sha256Hex("one"), sha256Hex("two")]);
		const iv = new Uint8Array(12);
		const probe = async (k: CryptoKey) =>
			toHex(new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, k, new Uint8Array(16))));
		const outputs = await Promise.all([
			probe(await ring.deriveBlockKey("a", h1)),
			probe(await ring.deriveBlockKey("a", h2)),
			probe(await ring.deriveBlockKey("b", h1)),
		]);
		expect(new Set(outputs).size).toBe(3);
	});

	it("imports each master key once and caches derived keys in a bounded LRU", async () => {
		const ring = new KeyRing([{ id: "k1", key: randomBytes(32) }], { cacheSize: 2 });
		const [h1, h2, h3] = await Promise.all([sha256Hex("1"), sha256Hex("2"), sha256Hex("3")]);
		const importKey = vi.spyOn(crypto.subtle, "importKey");
		const deriveKey = vi.spyOn(crypto.subtle, "deriveKey");
		try {
			const first = await ring.deriveBlockKey("k1", h1);
			expect(await ring.deriveBlockKey("k1", h1)).toBe(first);
			await ring.deriveBlockKey("k1", h2);
			await ring.deriveBlockKey("k1", h1); // h1 becomes most recent, h2 the eviction candidate
			await ring.deriveBlockKey("k1", h3); // evicts h2
			expect(await ring.deriveBlockKey("k1", h1)).toBe(first);
			expect(deriveKey).toHaveBeenCalledTimes(3);
			await ring.deriveBlockKey("k1", h2);
			expect(deriveKey).toHaveBeenCalledTimes(4);
			expect(importKey).toHaveBeenCalledTimes(1);
		} finally {
			importKey.mockRestore();
			deriveKey.mockRestore();
		}
	});

	it("rejects unknown key ids and malformed hashes", async () => {
		const ring = parseKeyRing(generateKeyRingSecret());
		await expect(async () => ring.deriveBlockKey("nope", EMPTY_SHA256)).rejects.toThrow(/unknown key id/);
		await expect(async () => ring.deriveBlockKey("k1", EMPTY_SHA256.toUpperCase())).rejects.toThrow(TypeError);
	});
});
