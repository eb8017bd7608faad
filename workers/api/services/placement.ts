/** Placement: which shard holds a new user (docs/decisions/0002). */

/**
 * Where a new user lives: FNV-1a of the id modulo the shard count. The result
 * is written to the directory, so later changes to the shard count (or moving
 * a user) never depend on recomputing it.
 */
export function placeUser(userId: string, shards: number): number {
	let h = 0x811c9dc5;
	for (let i = 0; i < userId.length; i++) {
		h ^= userId.charCodeAt(i);
		h = Math.imul(h, 0x01000193) >>> 0;
	}
	return h % shards;
}
