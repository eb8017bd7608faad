/**
 * Opaque ids: a type prefix, then 48 bits of milliseconds and 80 random bits
 * in Crockford base32. Time-ordered ids keep D1's B-tree inserts local.
 */
const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

export type IdPrefix = "usr" | "dev" | "nod" | "ver" | "upl" | "req" | "shr" | "lnk" | "act" | "whk" | "msg";

/** Returns a new id such as `nod_01jd8x...`. */
export function newId(prefix: IdPrefix, now = Date.now()): string {
	let out = "";
	let t = now;
	for (let i = 0; i < 10; i++) {
		out = ALPHABET.charAt(t % 32) + out;
		t = Math.floor(t / 32);
	}
	const random = crypto.getRandomValues(new Uint8Array(16));
	for (let i = 0; i < 16; i++) out += ALPHABET.charAt((random[i] ?? 0) % 32);
	return `${prefix}_${out}`;
}

/** True when `id` has the given prefix and the shape {@link newId} makes. */
export function isId(prefix: IdPrefix, id: string): boolean {
	return id.length === prefix.length + 27 && id.startsWith(`${prefix}_`) && /^[0-9a-hjkmnp-tv-z]+$/.test(id.slice(prefix.length + 1));
}
