/**
 * Cryptographic primitives shared by the workers and tests.
 *
 * Only web-standard APIs are used (WebCrypto, TextEncoder, getRandomValues) so
 * the same module runs unchanged in Cloudflare workerd, Node 22 and browsers.
 */

const encoder = new TextEncoder();

// ---------------------------------------------------------------------------
// Byte helpers
// ---------------------------------------------------------------------------

/**
 * WebCrypto's TypeScript signatures (TS 5.7+) only accept views over a plain
 * ArrayBuffer. Views over a SharedArrayBuffer are copied, because some engines
 * reject them at runtime too.
 */
function bufferSource(data: Uint8Array): Uint8Array<ArrayBuffer> {
	if (data.buffer instanceof ArrayBuffer) return data as Uint8Array<ArrayBuffer>;
	return new Uint8Array(data);
}

/** SHA-256 digest of `data`. */
export async function sha256(data: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
	return new Uint8Array(await crypto.subtle.digest("SHA-256", bufferSource(data)));
}

/** Lowercase hex SHA-256 of `data`; strings are hashed as UTF-8. */
export async function sha256Hex(data: Uint8Array | string): Promise<string> {
	return toHex(await sha256(typeof data === "string" ? encoder.encode(data) : data));
}

const HEX_DIGITS = "0123456789abcdef";
const BYTE_TO_HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => (HEX_DIGITS[i >> 4] ?? "") + (HEX_DIGITS[i & 15] ?? ""));

/** Lowercase hex encoding. */
export function toHex(bytes: Uint8Array): string {
	let out = "";
	for (const b of bytes) out += BYTE_TO_HEX[b];
	return out;
}

function hexNibble(code: number): number {
	if (code >= 48 && code <= 57) return code - 48; // 0-9
	if (code >= 97 && code <= 102) return code - 87; // a-f
	if (code >= 65 && code <= 70) return code - 55; // A-F
	return -1;
}

/**
 * Decodes hex (either case). Throws on odd length or any non-hex character:
 * silently skipping garbage would let two different strings name the same bytes.
 */
export function fromHex(hex: string): Uint8Array<ArrayBuffer> {
	if (hex.length % 2 !== 0) throw new Error("fromHex: odd number of hex digits");
	const out = new Uint8Array(hex.length / 2);
	for (let i = 0; i < out.length; i++) {
		const hi = hexNibble(hex.charCodeAt(2 * i));
		const lo = hexNibble(hex.charCodeAt(2 * i + 1));
		if (hi < 0 || lo < 0) throw new Error("fromHex: invalid hex digit");
		out[i] = (hi << 4) | lo;
	}
	return out;
}

const SHA256_HEX_RE = /^[0-9a-f]{64}$/;

/**
 * True when `s` is exactly 64 lowercase hex characters. Block addresses must be
 * canonical (lowercase) so one block can never be stored under two keys.
 */
export function isSha256Hex(s: string): boolean {
	return SHA256_HEX_RE.test(s);
}

const B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B64URL_LOOKUP: Int16Array = (() => {
	const table = new Int16Array(128).fill(-1);
	for (let i = 0; i < B64URL_ALPHABET.length; i++) table[B64URL_ALPHABET.charCodeAt(i)] = i;
	return table;
})();

/** Base64url without padding (RFC 4648 §5), the form used in tokens and stored hashes. */
export function toBase64Url(bytes: Uint8Array): string {
	let out = "";
	let i = 0;
	const a = B64URL_ALPHABET;
	for (; i + 2 < bytes.length; i += 3) {
		const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
		out += (a[n >> 18] ?? "") + (a[(n >> 12) & 63] ?? "") + (a[(n >> 6) & 63] ?? "") + (a[n & 63] ?? "");
	}
	const rest = bytes.length - i;
	if (rest === 1) {
		const n = (bytes[i] ?? 0) << 16;
		out += (a[n >> 18] ?? "") + (a[(n >> 12) & 63] ?? "");
	} else if (rest === 2) {
		const n = ((bytes[i] ?? 0) << 16) | ((bytes[i + 1] ?? 0) << 8);
		out += (a[n >> 18] ?? "") + (a[(n >> 12) & 63] ?? "") + (a[(n >> 6) & 63] ?? "");
	}
	return out;
}

/**
 * Decodes base64url. Trailing `=` padding is tolerated because operators often
 * paste keys produced by other tools; any other character outside the url-safe
 * alphabet (including `+` and `/`) throws.
 */
export function fromBase64Url(s: string): Uint8Array<ArrayBuffer> {
	let end = s.length;
	if (end % 4 === 0) {
		while (end > 0 && end > s.length - 2 && s.charCodeAt(end - 1) === 61) end--;
	}
	if (end % 4 === 1) throw new Error("fromBase64Url: invalid length");
	const out = new Uint8Array(Math.floor((end * 3) / 4));
	let acc = 0;
	let bits = 0;
	let o = 0;
	for (let i = 0; i < end; i++) {
		const code = s.charCodeAt(i);
		const v = code < 128 ? (B64URL_LOOKUP[code] ?? -1) : -1;
		if (v < 0) throw new Error("fromBase64Url: invalid character");
		acc = ((acc << 6) | v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (acc >> bits) & 0xff;
		}
	}
	return out;
}

/** Cryptographically secure random bytes. */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
	if (!Number.isSafeInteger(n) || n < 0) throw new RangeError("randomBytes: n must be a non-negative integer");
	const out = new Uint8Array(n);
	// getRandomValues refuses more than 65536 bytes per call.
	for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
	return out;
}

/**
 * Compares two byte arrays in time that depends only on their lengths, so a
 * secret compared against attacker input leaks nothing through timing. Lengths
 * are treated as public (all our secrets have fixed sizes).
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
	if (a.length !== b.length) return false;
	let diff = 0;
	for (let i = 0; i < a.length; i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
	return diff === 0;
}

// ---------------------------------------------------------------------------
// Password hashing
// ---------------------------------------------------------------------------

/**
 * PBKDF2-SHA256 iterations for new password hashes.
 *
 * OWASP (2023) recommends 600,000 iterations for PBKDF2-HMAC-SHA256
 * (docs/decisions/0004). Cloudflare's production runtime rejects any PBKDF2
 * derivation above 100,000 iterations ("Pbkdf2 failed: iteration counts
 * above 100000 are not supported") to stop a Worker from burning CPU
 * through a single call. Local workerd (`wrangler dev`, the
 * vitest pool) and Node do NOT enforce that cap, so a higher value would pass
 * every test and then break signup and login after deploy. 100,000 is the
 * strongest setting that works in production; the iteration count is stored in
 * each hash, so it can be raised later without invalidating existing hashes.
 */
export const PBKDF2_DEFAULT_ITERATIONS = 100_000;

/** The Workers runtime ceiling; enforced here because only production enforces it. */
export const PBKDF2_MAX_ITERATIONS = 100_000;

const PASSWORD_SCHEME = "pbkdf2-sha256";
/** PBKDF2 over HMAC-SHA256(pepper, password): `hmac-pbkdf2-sha256$<pepper id>$<iterations>$<salt>$<hash>`. */
const PEPPERED_SCHEME = "hmac-pbkdf2-sha256";
const PASSWORD_SALT_BYTES = 16;
const PASSWORD_HASH_BYTES = 32;
const ITERATIONS_RE = /^[1-9][0-9]{0,8}$/;
const PEPPER_ID_RE = /^[A-Za-z0-9_-]{8}$/;

/**
 * A server-side secret mixed into every password before PBKDF2, so that a
 * copy of the directory alone is not enough to guess passwords offline. Its
 * id is derived from the secret and stored in each hash it peppers.
 */
export interface PasswordPepper {
	readonly id: string;
	readonly key: CryptoKey;
}

/** The shortest pepper secret accepted, in characters. */
export const PEPPER_MIN_CHARS = 32;

/**
 * Imports the pepper secret: comma-separated secrets of at least
 * {@link PEPPER_MIN_CHARS} characters, the current one first. Older ones only
 * verify the hashes they peppered, which are re-peppered at their next
 * login; to rotate, prepend a new secret.
 *
 * @throws Error if the secret is empty or an entry is too short or repeated;
 *   a bad secret is a deployment bug and must fail loudly.
 */
export async function importPasswordPeppers(secret: string): Promise<PasswordPepper[]> {
	const peppers: PasswordPepper[] = [];
	for (const [i, entry] of secret.split(",").entries()) {
		const raw = entry.trim();
		if (raw.length < PEPPER_MIN_CHARS)
			throw new Error(`importPasswordPeppers: entry ${i + 1} is shorter than ${PEPPER_MIN_CHARS} characters`);
		const key = await crypto.subtle.importKey("raw", encoder.encode(raw), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
		const id = toBase64Url(new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode("drive/password-pepper/id")))).slice(0, 8);
		if (peppers.some((p) => p.id === id)) throw new Error(`importPasswordPeppers: entry ${i + 1} repeats an earlier one`);
		peppers.push({ id, key });
	}
	return peppers;
}

interface ParsedPasswordHash {
	pepperId: string | null;
	iterations: number;
	salt: Uint8Array<ArrayBuffer>;
	hash: Uint8Array<ArrayBuffer>;
}

function parsePasswordHash(stored: string): ParsedPasswordHash | null {
	const parts = stored.split("$");
	let pepperId: string | null = null;
	if (parts[0] === PEPPERED_SCHEME && parts.length === 5) {
		pepperId = parts[1] ?? "";
		if (!PEPPER_ID_RE.test(pepperId)) return null;
		parts.splice(0, 2, PASSWORD_SCHEME);
	}
	if (parts.length !== 4) return null;
	const [scheme, iter, saltB64, hashB64] = parts;
	if (scheme !== PASSWORD_SCHEME || iter === undefined || saltB64 === undefined || hashB64 === undefined) {
		return null;
	}
	if (!ITERATIONS_RE.test(iter)) return null;
	const iterations = Number(iter);
	// A hash above the cap could never be verified in production; treating it
	// as malformed also stops a tampered row from requesting unbounded work.
	if (iterations > PBKDF2_MAX_ITERATIONS) return null;
	try {
		const salt = fromBase64Url(saltB64);
		const hash = fromBase64Url(hashB64);
		if (salt.length < 8 || hash.length < 16 || hash.length > 64) return null;
		return { pepperId, iterations, salt, hash };
	} catch {
		return null;
	}
}

/** What PBKDF2 derives from: the password in NFC (so macOS's NFD typing matches), peppered when a pepper is given. */
async function passwordInput(password: string, pepper?: PasswordPepper): Promise<Uint8Array<ArrayBuffer>> {
	const bytes = bufferSource(encoder.encode(password.normalize("NFC")));
	return pepper ? new Uint8Array(await crypto.subtle.sign("HMAC", pepper.key, bytes)) : bytes;
}

async function pbkdf2(input: Uint8Array<ArrayBuffer>, salt: Uint8Array<ArrayBuffer>, iterations: number, bytes: number) {
	const key = await crypto.subtle.importKey("raw", input, "PBKDF2", false, ["deriveBits"]);
	const bits = await crypto.subtle.deriveBits({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, key, bytes * 8);
	return new Uint8Array(bits);
}

/**
 * Hashes a password with PBKDF2-SHA256 and a random 16-byte salt, over
 * HMAC-SHA256(pepper, password) when a pepper is given.
 *
 * @returns `pbkdf2-sha256$<iterations>$<salt b64url>$<hash b64url>`, or with a
 *   pepper `hmac-pbkdf2-sha256$<pepper id>$<iterations>$<salt>$<hash>`; the
 *   string carries its own parameters so they can change without a migration.
 * @throws RangeError if `iterations` is outside 1..{@link PBKDF2_MAX_ITERATIONS}.
 */
export async function hashPassword(password: string, opts: { iterations?: number; pepper?: PasswordPepper } = {}): Promise<string> {
	const iterations = opts.iterations ?? PBKDF2_DEFAULT_ITERATIONS;
	if (!Number.isSafeInteger(iterations) || iterations < 1 || iterations > PBKDF2_MAX_ITERATIONS) {
		throw new RangeError(`hashPassword: iterations must be 1..${PBKDF2_MAX_ITERATIONS}`);
	}
	const salt = randomBytes(PASSWORD_SALT_BYTES);
	const hash = await pbkdf2(await passwordInput(password, opts.pepper), salt, iterations, PASSWORD_HASH_BYTES);
	const scheme = opts.pepper ? `${PEPPERED_SCHEME}$${opts.pepper.id}` : PASSWORD_SCHEME;
	return `${scheme}$${iterations}$${toBase64Url(salt)}$${toBase64Url(hash)}`;
}

/**
 * Checks `password` against a string from {@link hashPassword}, comparing in
 * constant time; a peppered hash needs its pepper among `peppers`. A
 * malformed stored string, or one whose pepper is gone, yields `false`, not
 * an exception, so a corrupt row cannot turn a login into a 500 that differs
 * from a bad password.
 */
export async function verifyPassword(password: string, stored: string, peppers: readonly PasswordPepper[] = []): Promise<boolean> {
	const parsed = parsePasswordHash(stored);
	if (parsed === null) return false;
	const pepper = parsed.pepperId === null ? undefined : peppers.find((p) => p.id === parsed.pepperId);
	if (parsed.pepperId !== null && pepper === undefined) return false;
	const derived = await pbkdf2(await passwordInput(password, pepper), parsed.salt, parsed.iterations, parsed.hash.length);
	return timingSafeEqual(derived, parsed.hash);
}

/**
 * True when a stored hash should be replaced with a fresh {@link hashPassword}
 * result after the next successful login: weaker parameters, another scheme,
 * or (given the current `pepper`) no pepper or an older one.
 */
export function needsRehash(stored: string, pepper?: PasswordPepper): boolean {
	const parsed = parsePasswordHash(stored);
	if (parsed === null) return true;
	return (
		parsed.iterations < PBKDF2_DEFAULT_ITERATIONS ||
		parsed.salt.length < PASSWORD_SALT_BYTES ||
		parsed.hash.length !== PASSWORD_HASH_BYTES ||
		(pepper !== undefined && parsed.pepperId !== pepper.id)
	);
}

/**
 * A well-formed hash with the default parameters that no known password
 * matches (its bytes are random, not derived from any password). Verifying
 * against it costs exactly as much as verifying a real user's hash.
 */
export const DUMMY_PASSWORD_HASH = "pbkdf2-sha256$100000$12rN1GbAdmf44cD4IUg18w$4ni01o_eMVWPsGHXJPYvkGyd18mMaN__NFoFlLfHjyE";

/**
 * Spends the same work as {@link verifyPassword} on a real hash (peppered
 * with `pepper`, when given) and returns `false`. Call it when a login names
 * an unknown email so the response time does not reveal which emails have
 * accounts.
 */
export async function verifyPasswordAgainstDummy(password: string, pepper?: PasswordPepper): Promise<false> {
	const dummy = parsePasswordHash(DUMMY_PASSWORD_HASH);
	if (dummy) await pbkdf2(await passwordInput(password, pepper), dummy.salt, dummy.iterations, dummy.hash.length);
	return false;
}

// ---------------------------------------------------------------------------
// Block encryption key ring
// ---------------------------------------------------------------------------

/** Key ids are short ASCII so they fit the block header's one-byte length field cheaply. */
export const KEY_ID_RE = /^[A-Za-z0-9_-]{1,16}$/;

/** Master keys are 256-bit. */
export const MASTER_KEY_BYTES = 32;

/**
 * HKDF salt for per-block keys. Versioned so a future derivation scheme can
 * never produce the same key as this one.
 */
export const BLOCK_KEY_HKDF_SALT: Uint8Array<ArrayBuffer> = new Uint8Array(encoder.encode("drive/block/v1"));

/** HKDF salt for keys that encrypt small secrets at rest (webhook signing secrets), apart from every block key. */
export const SECRET_KEY_HKDF_SALT: Uint8Array<ArrayBuffer> = new Uint8Array(encoder.encode("drive/secret/v1"));

const DEFAULT_BLOCK_KEY_CACHE = 64;

/** One master key as supplied to {@link KeyRing}. */
export interface KeyRingEntry {
	/** 1..16 chars of `[A-Za-z0-9_-]`; recorded in every block header. */
	id: string;
	/** 32 bytes of key material. */
	key: Uint8Array;
}

/**
 * The set of master keys for block encryption. The first key encrypts new
 * blocks; the others are retained so blocks written before a rotation still
 * decrypt.
 *
 * Every block gets its own AES-256-GCM key,
 * HKDF-SHA256(ikm = master, salt = "drive/block/v1", info = SHA-256 of the
 * block's plaintext). With a single key and random 96-bit IVs, NIST SP 800-38D
 * limits that key to 2^32 encryptions, which a service at scale would exceed;
 * a key per block removes that budget concern entirely.
 */
export class KeyRing {
	/** Id of the key used for new blocks. */
	readonly currentKeyId: string;
	/** All key ids, current first. */
	readonly keyIds: readonly string[];

	readonly #raw = new Map<string, Uint8Array<ArrayBuffer>>();
	readonly #base = new Map<string, Promise<CryptoKey>>();
	// Promises are cached so concurrent reads of one block share one derivation.
	readonly #derived = new Map<string, Promise<CryptoKey>>();
	readonly #cacheSize: number;

	/**
	 * @throws Error if the list is empty, an id is malformed or repeated, or a
	 *   key is not 32 bytes.
	 */
	constructor(entries: readonly KeyRingEntry[], opts: { cacheSize?: number } = {}) {
		const first = entries[0];
		if (first === undefined) throw new Error("KeyRing: at least one key is required");
		for (const { id, key } of entries) {
			if (!KEY_ID_RE.test(id)) throw new Error(`KeyRing: invalid key id ${JSON.stringify(id)}`);
			if (this.#raw.has(id)) throw new Error(`KeyRing: duplicate key id ${JSON.stringify(id)}`);
			if (key.length !== MASTER_KEY_BYTES) {
				throw new Error(`KeyRing: key ${JSON.stringify(id)} must be ${MASTER_KEY_BYTES} bytes, got ${key.length}`);
			}
			this.#raw.set(id, new Uint8Array(key));
		}
		this.currentKeyId = first.id;
		this.keyIds = entries.map((e) => e.id);
		this.#cacheSize = Math.max(1, opts.cacheSize ?? DEFAULT_BLOCK_KEY_CACHE);
	}

	/** True if `keyId` is in the ring. */
	has(keyId: string): boolean {
		return this.#raw.has(keyId);
	}

	#baseKey(keyId: string): Promise<CryptoKey> | null {
		let base = this.#base.get(keyId);
		if (base === undefined) {
			const raw = this.#raw.get(keyId);
			if (raw === undefined) return null;
			base = crypto.subtle.importKey("raw", raw, "HKDF", false, ["deriveKey"]);
			this.#base.set(keyId, base);
		}
		return base;
	}

	/**
	 * An AES-256-GCM key for secrets of one kind (`purpose`, e.g.
	 * "webhook-secret") under one master key. Its salt differs from blocks',
	 * so it can never equal a block key.
	 */
	async deriveSecretKey(keyId: string, purpose: string): Promise<CryptoKey> {
		const base = this.#baseKey(keyId);
		if (base === null) throw new Error(`KeyRing: unknown key id ${JSON.stringify(keyId)}`);
		return crypto.subtle.deriveKey(
			{ name: "HKDF", hash: "SHA-256", salt: SECRET_KEY_HKDF_SALT, info: encoder.encode(purpose) },
			await base,
			{ name: "AES-GCM", length: 256 },
			false,
			["encrypt", "decrypt"],
		);
	}

	/**
	 * The AES-256-GCM key for one block under one master key.
	 *
	 * @param blockHashHex the block's address (64 lowercase hex chars).
	 * Rejects with Error if `keyId` is not in the ring (check {@link has} first
	 * to tell a missing key apart from other failures), TypeError on a bad hash.
	 */
	deriveBlockKey(keyId: string, blockHashHex: string): Promise<CryptoKey> {
		if (!isSha256Hex(blockHashHex)) {
			return Promise.reject(new TypeError("KeyRing: block hash must be 64 lowercase hex chars"));
		}
		const cacheKey = `${keyId}:${blockHashHex}`;
		const hit = this.#derived.get(cacheKey);
		if (hit !== undefined) {
			// Re-insert to mark as most recently used (Map keeps insertion order).
			this.#derived.delete(cacheKey);
			this.#derived.set(cacheKey, hit);
			return hit;
		}
		const base = this.#baseKey(keyId);
		if (base === null) return Promise.reject(new Error(`KeyRing: unknown key id ${JSON.stringify(keyId)}`));
		const derived = base.then((b) =>
			crypto.subtle.deriveKey(
				{ name: "HKDF", hash: "SHA-256", salt: BLOCK_KEY_HKDF_SALT, info: fromHex(blockHashHex) },
				b,
				{ name: "AES-GCM", length: 256 },
				false,
				["encrypt", "decrypt"],
			),
		);
		this.#derived.set(cacheKey, derived);
		// A failed derivation must not stay cached and poison later reads.
		derived.catch(() => {
			if (this.#derived.get(cacheKey) === derived) this.#derived.delete(cacheKey);
		});
		while (this.#derived.size > this.#cacheSize) {
			const oldest = this.#derived.keys().next();
			if (oldest.done === true) break;
			this.#derived.delete(oldest.value);
		}
		return derived;
	}
}

const SECRET_HINT = "expected comma-separated keyId:base64url(32 bytes) entries, e.g. the output of generateKeyRingSecret()";

/**
 * Parses the block-encryption secret: comma-separated `keyId:base64url(32
 * bytes)` entries, current key first. Whitespace around entries is ignored
 * because secrets pasted into `wrangler secret put` often gain a newline.
 *
 * @throws Error naming the bad entry (never echoing key material); a malformed
 *   secret is a deployment bug and must fail loudly rather than encrypt with
 *   the wrong key.
 */
export function parseKeyRing(secret: string): KeyRing {
	const entries: KeyRingEntry[] = [];
	const parts = secret.split(",");
	for (let i = 0; i < parts.length; i++) {
		const part = (parts[i] ?? "").trim();
		if (part === "") throw new Error(`parseKeyRing: entry ${i + 1} is empty; ${SECRET_HINT}`);
		const colon = part.indexOf(":");
		if (colon < 0) throw new Error(`parseKeyRing: entry ${i + 1} has no ":"; ${SECRET_HINT}`);
		const id = part.slice(0, colon);
		if (!KEY_ID_RE.test(id)) {
			throw new Error(`parseKeyRing: entry ${i + 1} has an invalid key id (1..16 chars of A-Za-z0-9_-)`);
		}
		let key: Uint8Array<ArrayBuffer>;
		try {
			key = fromBase64Url(part.slice(colon + 1));
		} catch {
			throw new Error(`parseKeyRing: key ${JSON.stringify(id)} is not valid base64url; ${SECRET_HINT}`);
		}
		if (key.length !== MASTER_KEY_BYTES) {
			throw new Error(`parseKeyRing: key ${JSON.stringify(id)} decodes to ${key.length} bytes, expected ${MASTER_KEY_BYTES}`);
		}
		if (entries.some((e) => e.id === id)) throw new Error(`parseKeyRing: duplicate key id ${JSON.stringify(id)}`);
		entries.push({ id, key });
	}
	return new KeyRing(entries);
}

/**
 * A fresh single-key secret for {@link parseKeyRing}. To rotate, prepend a new
 * entry with a new id: `<new>,<old secret>`.
 */
export function generateKeyRingSecret(keyId = "k1"): string {
	if (!KEY_ID_RE.test(keyId)) throw new Error("generateKeyRingSecret: key id must be 1..16 chars of A-Za-z0-9_-");
	return `${keyId}:${toBase64Url(randomBytes(MASTER_KEY_BYTES))}`;
}
