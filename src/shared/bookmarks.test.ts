import { describe, expect, it } from "vitest";
import { formatBookmarks, isD1Bookmark, MAX_BOOKMARKS, mergeBookmarks, parseBookmarks, type Bookmarks } from "./bookmarks";

/** A D1-shaped bookmark whose counter field is `n` (local D1's shape). */
const bm = (n: number) => `00000000-${n.toString(16).padStart(8, "0")}-00000000-${"0".repeat(32)}`;

describe("Drive-Bookmark values", () => {
	it("round-trips entries, shards in order", () => {
		const value = `3.${bm(2)}, 0.${bm(9)}`;
		const parsed = parseBookmarks(value);
		expect(parsed).toEqual(
			new Map([
				[3, bm(2)],
				[0, bm(9)],
			]),
		);
		expect(formatBookmarks(parsed ?? new Map())).toBe(`0.${bm(9)}, 3.${bm(2)}`);
		expect(formatBookmarks(new Map())).toBe("");
	});

	it("accepts production-shaped bookmarks and keeps the newer of two entries of a shard", () => {
		const production = `00000085-0000024c-00004c6d-${"8e611177".repeat(8)}`;
		expect(isD1Bookmark(production)).toBe(true);
		expect(parseBookmarks(`1.${bm(5)},1.${bm(7)},1.${bm(6)}`)?.get(1)).toBe(bm(7));
	});

	it("ignores well-formed entries that are not D1 bookmarks, and refuses the malformed", () => {
		expect(parseBookmarks("1.not-a-bookmark")).toEqual(new Map());
		for (const bad of ["", "x", "1.", ".abc", "01.abc", "12345.abc", `1.${bm(1)};2.${bm(1)}`, "1.a b", `1.${"a".repeat(201)}`])
			expect(parseBookmarks(bad)).toBeNull();
		const many = Array.from({ length: MAX_BOOKMARKS + 1 }, (_, i) => `${i}.${bm(1)}`).join(",");
		expect(parseBookmarks(many)).toBeNull();
	});

	it("merges newer entries only, and drops the entries updated longest ago past the limit", () => {
		const kept: Bookmarks = new Map([[0, bm(5)]]);
		mergeBookmarks(kept, new Map([[0, bm(4)]]));
		expect(kept.get(0)).toBe(bm(5));
		mergeBookmarks(kept, new Map([[0, bm(6)]]));
		expect(kept.get(0)).toBe(bm(6));
		for (let shard = 1; shard <= MAX_BOOKMARKS; shard++) mergeBookmarks(kept, new Map([[shard, bm(1)]]));
		expect(kept.size).toBe(MAX_BOOKMARKS);
		// Shard 0 was updated before all the others.
		expect(kept.has(0)).toBe(false);
	});
});
