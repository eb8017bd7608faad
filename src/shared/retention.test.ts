import { describe, expect, it } from "vitest";
import { DEFAULT_RETENTION, retentionPolicy, versionsToExpire, type RetainedVersion, type RetentionPolicy } from "./retention";

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
// A Monday, 00:00 UTC: interval boundaries fall on round ages below.
const NOW = Date.UTC(2026, 0, 5, 0, 0, 0);

/** A version `age` ms old; `*` marks it kept (pinned or labelled), `^` the head. Ids are the spec itself. */
type Spec = [id: string, age: number];

function history(specs: Spec[]): RetainedVersion[] {
	// Commit order is oldest first; the newest is the head unless one is marked.
	const sorted = [...specs].sort((a, b) => b[1] - a[1]);
	const marked = sorted.some(([id]) => id.includes("^"));
	return sorted.map(([id, age], i) => ({
		id,
		createdAt: NOW - age,
		kept: id.includes("*"),
		isHead: marked ? id.includes("^") : i === sorted.length - 1,
	}));
}

const cases: { name: string; versions: Spec[]; policy?: Partial<RetentionPolicy>; expire: string[] }[] = [
	{ name: "an empty history", versions: [], expire: [] },
	{ name: "a lone head, however old", versions: [["h", 400 * DAY]], expire: [] },
	{
		name: "everything younger than 10 minutes",
		versions: [
			["a", 9 * MIN + 59_000],
			["b", 5 * MIN],
			["c", 5 * MIN - 1],
			["d", 0],
		],
		expire: [],
	},
	{
		name: "the newest per minute under an hour",
		versions: [
			["m20a", 20 * MIN + 50_000],
			["m20b", 20 * MIN + 10_000],
			["m21", 21 * MIN + 30_000],
			["head", 0],
		],
		expire: ["m20a"],
	},
	{
		name: "the newest per hour under a day",
		versions: [
			["h3a", 3 * HOUR + 50 * MIN],
			["h3b", 3 * HOUR + 40 * MIN],
			["h3c", 3 * HOUR + 1 * MIN],
			["h5", 5 * HOUR + 1 * MIN],
			["head", 0],
		],
		expire: ["h3a", "h3b"],
	},
	{
		name: "the newest per day under 30 days",
		versions: [
			["d2a", 2 * DAY + 20 * HOUR],
			["d2b", 2 * DAY + 2 * HOUR],
			["d9", 9 * DAY + HOUR],
			["head", 0],
		],
		expire: ["d2a"],
	},
	{
		name: "the newest per week beyond 30 days when kept forever",
		policy: { maxAgeDays: 0 },
		versions: [
			// Weeks are epoch weeks (Thursday to Thursday): 40 and 41 days back share one, 50 does not.
			["w40", 40 * DAY],
			["w41", 41 * DAY],
			["w50", 50 * DAY],
			["head", 0],
		],
		expire: ["w41"],
	},
	{
		name: "whatever reached max_age_days",
		policy: { maxAgeDays: 7 },
		versions: [
			["old", 7 * DAY],
			["young", 7 * DAY - MIN],
			["head", 0],
		],
		expire: ["old"],
	},
	{
		name: "the oldest droppable ones past max_versions",
		policy: { maxVersions: 3 },
		versions: [
			["a", 5 * DAY],
			["b*", 4 * DAY],
			["c", 3 * DAY],
			["d", 2 * DAY],
			["head", 0],
		],
		expire: ["a", "c"],
	},
	{
		name: "never a kept version or the head, even past every limit",
		policy: { maxAgeDays: 1, maxVersions: 1 },
		versions: [
			["k1*", 90 * DAY],
			["k2*", 90 * DAY - 1],
			["^old-head", 60 * DAY],
			["x", 2 * MIN],
		],
		expire: ["x"],
	},
	{
		name: "a kept version still fills its interval",
		versions: [
			["h3", 3 * HOUR + 30 * MIN],
			["h3*", 3 * HOUR + 10 * MIN],
			["head", 0],
		],
		expire: ["h3"],
	},
	{
		name: "no cap with max_versions 0",
		policy: { maxVersions: 0 },
		versions: Array.from({ length: 150 }, (_, i): Spec => [`v${i}`, i * 1000]),
		expire: [],
	},
	{
		name: "the oldest young ones too, past the cap",
		versions: Array.from({ length: 150 }, (_, i): Spec => [`v${i}`, i * 1000]),
		expire: Array.from({ length: 50 }, (_, i) => `v${149 - i}`),
	},
];

describe("versionsToExpire", () => {
	it.each(cases)("drops exactly what the policy says: $name", ({ versions, policy, expire }) => {
		const effective = { ...DEFAULT_RETENTION, ...policy };
		const list = history(versions);
		expect(versionsToExpire(list, NOW, effective)).toEqual(list.filter((v) => expire.includes(v.id)).map((v) => v.id));
	});

	it.each(cases)("drops nothing more when run again at the same time: $name", ({ versions, policy }) => {
		const effective = { ...DEFAULT_RETENTION, ...policy };
		const list = history(versions);
		const first = new Set(versionsToExpire(list, NOW, effective));
		expect(
			versionsToExpire(
				list.filter((v) => !first.has(v.id)),
				NOW,
				effective,
			),
		).toEqual([]);
	});

	it("orders versions of one millisecond by commit order: the later one is the newest", () => {
		const t = NOW - 2 * HOUR;
		const list: RetainedVersion[] = [
			{ id: "first", createdAt: t, kept: false, isHead: false },
			{ id: "second", createdAt: t, kept: false, isHead: false },
			{ id: "head", createdAt: NOW, kept: false, isHead: true },
		];
		expect(versionsToExpire(list, NOW, DEFAULT_RETENTION)).toEqual(["first"]);
	});

	it("thins 1,000 commits 7 minutes apart to one per interval, within the cap", () => {
		const list: RetainedVersion[] = Array.from({ length: 1000 }, (_, i) => ({
			id: `v${i}`,
			createdAt: NOW - (999 - i) * 7 * MIN,
			kept: false,
			isHead: i === 999,
		}));
		const dropped = new Set(versionsToExpire(list, NOW, DEFAULT_RETENTION));
		const left = list.filter((v) => !dropped.has(v.id));
		expect(left.length).toBeLessThanOrEqual(DEFAULT_RETENTION.maxVersions);
		expect(left.at(-1)?.id).toBe("v999");
		// At most one survivor per hour beyond the first hour.
		const hours = left.filter((v) => NOW - v.createdAt >= HOUR && NOW - v.createdAt < DAY).map((v) => Math.floor(v.createdAt / HOUR));
		expect(new Set(hours).size).toBe(hours.length);
	});
});

describe("retentionPolicy", () => {
	it.each([
		[{}, DEFAULT_RETENTION],
		[
			{ VERSION_MAX_AGE_DAYS: "0", VERSION_MAX_VERSIONS: "0" },
			{ maxAgeDays: 0, maxVersions: 0 },
		],
		[
			{ VERSION_MAX_AGE_DAYS: "90", VERSION_MAX_VERSIONS: "500" },
			{ maxAgeDays: 90, maxVersions: 500 },
		],
		[{ VERSION_MAX_AGE_DAYS: "-1", VERSION_MAX_VERSIONS: "lots" }, DEFAULT_RETENTION],
		[{ VERSION_MAX_AGE_DAYS: "1.5", VERSION_MAX_VERSIONS: " " }, DEFAULT_RETENTION],
	])("reads %j as %j", (vars, policy) => {
		expect(retentionPolicy(vars)).toEqual(policy);
	});
});

describe("the count cap and other people's edits", () => {
	it("keeps the last version before someone else's run of edits, even past max_versions", () => {
		// The owner's two versions, then a share member's burst of five.
		const versions: RetainedVersion[] = [
			{ id: "owner-1", createdAt: NOW - 5 * MIN, kept: false, isHead: false, authorId: null },
			{ id: "owner-2", createdAt: NOW - 4 * MIN, kept: false, isHead: false, authorId: null },
			...[1, 2, 3, 4].map((n) => ({
				id: `editor-${n}`,
				createdAt: NOW - (4 - n) * MIN,
				kept: false,
				isHead: false,
				authorId: "usr_editor",
			})),
			{ id: "editor-5", createdAt: NOW, kept: false, isHead: true, authorId: "usr_editor" },
		];
		const expired = versionsToExpire(versions, NOW, { maxAgeDays: 30, maxVersions: 3 });
		expect(expired).not.toContain("owner-2");
		expect(expired).toEqual(["owner-1", "editor-1", "editor-2", "editor-3"]);
	});
});
