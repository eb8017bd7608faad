import { describe, expect, it } from "vitest";
import { FakeWorld, ROOT, type ServerNode } from "./fake-world";
import { type Action, plan, type Plan } from "./planner";

/** A world where every path given is on the server, on disk and in S alike. */
function world(entries: [path: string, content: string | null][]): { w: FakeWorld; id: (path: string) => string } {
	const w = new FakeWorld();
	const ids = new Map<string, string>([["", ROOT]]);
	for (const [path, content] of entries) {
		const parent = ids.get(path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "") as string;
		const n = w.serverCreate(parent, path.slice(path.lastIndexOf("/") + 1), content === null ? "folder" : "file", content);
		ids.set(path, n.nodeId);
		const fileId = w.newId("i");
		w.local.set(path, { path, type: n.type, contentHash: content, size: 0, fileId });
		w.synced.set(n.nodeId, { nodeId: n.nodeId, path, type: n.type, versionId: n.versionId, contentHash: content, size: 0, fileId });
	}
	return { w, id: (path) => ids.get(path) as string };
}

const planOf = (w: FakeWorld, extra: { force?: boolean } = {}): Plan =>
	plan(w.trees(), { rootId: ROOT, deviceName: w.device, now: w.now, force: true, ...extra });

/** Plans and applies until the plan is empty; returns every action taken, plan by plan. */
function settle(w: FakeWorld): Action[][] {
	const rounds: Action[][] = [];
	for (let i = 0; i < 20; i++) {
		const { actions } = planOf(w);
		if (actions.length === 0) return rounds;
		rounds.push(actions);
		for (const a of actions) w.apply(a);
	}
	throw new Error("no convergence");
}

const node = (w: FakeWorld, id: string) => w.server.get(id) as ServerNode;
const editRemote = (w: FakeWorld, id: string, content: string) =>
	Object.assign(node(w, id), { versionId: w.newId("v"), contentHash: content });
const editLocal = (w: FakeWorld, path: string, content: string) => {
	const l = w.local.get(path);
	if (l) w.local.set(path, { ...l, contentHash: content });
};
const moveLocal = (w: FakeWorld, from: string, to: string) => {
	for (const [p, l] of [...w.local]) {
		if (p !== from && !p.startsWith(`${from}/`)) continue;
		w.local.delete(p);
		w.local.set(to + p.slice(from.length), { ...l, path: to + p.slice(from.length) });
	}
};
const deleteLocal = (w: FakeWorld, path: string) => {
	for (const p of [...w.local.keys()]) if (p === path || p.startsWith(`${path}/`)) w.local.delete(p);
};
const localFiles = (w: FakeWorld) => Object.fromEntries([...w.local.values()].map((l) => [l.path, l.contentHash]));

describe("planner: one side changed", () => {
	it("plans nothing when the three trees agree", () => {
		const { w } = world([
			["docs", null],
			["docs/a.txt", "h1"],
		]);
		expect(planOf(w)).toEqual({ actions: [], problems: [], held: null });
	});

	it("uploads a local edit with If-Match set to the synced version", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		editLocal(w, "a.txt", "h2");
		const base = node(w, id("a.txt")).versionId;
		expect(planOf(w).actions).toEqual([
			{ kind: "upload", path: "a.txt", parentId: ROOT, nodeId: id("a.txt"), ifMatch: base, contentHash: "h2" },
		]);
	});

	it("creates new local folders parents first, then uploads the files in them", () => {
		const { w } = world([]);
		w.local.set("x", { path: "x", type: "folder", contentHash: null, size: 0, fileId: "i-x" });
		w.local.set("x/y", { path: "x/y", type: "folder", contentHash: null, size: 0, fileId: "i-y" });
		w.local.set("x/y/f", { path: "x/y/f", type: "file", contentHash: "h9", size: 0, fileId: "i-f" });
		const { actions } = planOf(w);
		expect(actions.map((a) => [a.kind, "path" in a ? a.path : ""])).toEqual([
			["create_folder", "x"],
			["create_folder", "x/y"],
			["upload", "x/y/f"],
		]);
		settle(w);
		expect([...w.server.values()].filter((n) => n.nodeId !== ROOT).map((n) => w.remotePath(n.nodeId))).toEqual(["x", "x/y", "x/y/f"]);
	});

	it("turns a local rename (same inode) into one server move, not a delete and an upload", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		moveLocal(w, "a.txt", "b.txt");
		expect(planOf(w).actions).toEqual([
			{ kind: "move_remote", nodeId: id("a.txt"), from: "a.txt", to: "b.txt", parentId: ROOT, name: "b.txt" },
		]);
	});

	it("treats an editor's safe-save (a new inode at the same path) as an edit", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		w.local.set("a.txt", { path: "a.txt", type: "file", contentHash: "h2", size: 0, fileId: "i-new" });
		expect(planOf(w).actions).toMatchObject([{ kind: "upload", nodeId: id("a.txt"), contentHash: "h2" }]);
	});

	it("deletes on the server what was deleted on disk, children before parents", () => {
		const { w, id } = world([
			["d", null],
			["d/e", null],
			["d/e/f", "h1"],
		]);
		deleteLocal(w, "d");
		expect(planOf(w).actions).toEqual([
			{ kind: "delete_remote", nodeId: id("d/e/f"), path: "d/e/f" },
			{ kind: "delete_remote", nodeId: id("d/e"), path: "d/e" },
			{ kind: "delete_remote", nodeId: id("d"), path: "d" },
		]);
	});

	it("downloads a remote edit, expecting the local file to be as synced", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		editRemote(w, id("a.txt"), "h2");
		const fileId = w.local.get("a.txt")?.fileId;
		expect(planOf(w).actions).toEqual([
			{
				kind: "download",
				nodeId: id("a.txt"),
				versionId: node(w, id("a.txt")).versionId,
				contentHash: "h2",
				path: "a.txt",
				expect: { contentHash: "h1", fileId },
			},
		]);
	});

	it("renames on disk what was moved on the server, a folder as one rename", () => {
		const { w, id } = world([
			["d", null],
			["d/f", "h1"],
			["e", null],
		]);
		Object.assign(node(w, id("d")), { parentId: id("e"), name: "D" });
		expect(settle(w)[0]).toEqual([{ kind: "move_local", nodeId: id("d"), from: "d", to: "e/D", caseOnly: false }]);
		expect(localFiles(w)).toEqual({ e: null, "e/D": null, "e/D/f": "h1" });
	});

	it("moves a file trashed on the server into the local trash when it is unchanged on disk", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		node(w, id("a.txt")).trashed = true;
		expect(planOf(w).actions).toEqual([
			{ kind: "trash_local", nodeId: id("a.txt"), path: "a.txt", expect: { contentHash: "h1", fileId: w.local.get("a.txt")?.fileId } },
		]);
		settle(w);
		expect(w.localTrash.map((l) => l.contentHash)).toEqual(["h1"]);
	});
});

describe("planner: both sides changed", () => {
	it("records equal edits on both sides without a transfer", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		editRemote(w, id("a.txt"), "h2");
		editLocal(w, "a.txt", "h2");
		expect(planOf(w).actions).toEqual([{ kind: "record", nodeId: id("a.txt"), path: "a.txt" }]);
	});

	it("uploads different edits with If-Match, and ends with the server's conflicted copy on disk too", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		const base = node(w, id("a.txt")).versionId;
		editRemote(w, id("a.txt"), "theirs");
		editLocal(w, "a.txt", "ours");
		const rounds = settle(w);
		expect(rounds[0]).toMatchObject([{ kind: "upload", nodeId: id("a.txt"), ifMatch: base, contentHash: "ours" }]);
		expect(localFiles(w)).toEqual({ "a.txt": "theirs", "a (conflicted copy laptop 2026-12-03 120000).txt": "ours" });
	});

	it("brings a file trashed on the server back when it was edited on disk (edit beats delete)", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		node(w, id("a.txt")).trashed = true;
		editLocal(w, "a.txt", "h2");
		expect(planOf(w).actions).toMatchObject([{ kind: "upload", nodeId: id("a.txt"), contentHash: "h2" }]);
		settle(w);
		expect(node(w, id("a.txt"))).toMatchObject({ trashed: false, contentHash: "h2" });
	});

	it("downloads again a file edited on the server and deleted on disk", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		editRemote(w, id("a.txt"), "h2");
		deleteLocal(w, "a.txt");
		expect(planOf(w).actions).toMatchObject([{ kind: "download", nodeId: id("a.txt"), path: "a.txt", expect: null }]);
	});

	it("keeps a folder deleted on disk when the server added a file to it", () => {
		const { w, id } = world([["d", null]]);
		w.serverCreate(id("d"), "new.txt", "file", "h5");
		deleteLocal(w, "d");
		settle(w);
		expect(localFiles(w)).toEqual({ d: null, "d/new.txt": "h5" });
	});

	it("applies a remote move first, then uploads the local edit to the moved file", () => {
		const { w, id } = world([["a.txt", "h1"]]);
		Object.assign(node(w, id("a.txt")), { name: "b.txt" });
		editLocal(w, "a.txt", "h2");
		const rounds = settle(w);
		expect(rounds.map((r) => r.map((a) => a.kind))).toEqual([["move_local"], ["upload"]]);
		expect(node(w, id("a.txt"))).toMatchObject({ name: "b.txt", contentHash: "h2" });
	});

	it("moves a new local file aside when the server made a different one at its path", () => {
		const { w } = world([]);
		w.serverCreate(ROOT, "a.txt", "file", "theirs");
		w.local.set("a.txt", { path: "a.txt", type: "file", contentHash: "ours", size: 0, fileId: "i-ours" });
		expect(planOf(w).actions).toEqual([
			{ kind: "move_local", nodeId: null, from: "a.txt", to: "a (conflicted copy laptop 2026-12-03 120000).txt", caseOnly: false },
		]);
		settle(w);
		expect(localFiles(w)).toEqual({ "a.txt": "theirs", "a (conflicted copy laptop 2026-12-03 120000).txt": "ours" });
	});
});

describe("planner: names", () => {
	it("renames on disk a case-only rename made on the server, flagged for case-insensitive disks", () => {
		const { w, id } = world([["readme.md", "h1"]]);
		node(w, id("readme.md")).name = "README.md";
		expect(planOf(w).actions).toEqual([
			{ kind: "move_local", nodeId: id("readme.md"), from: "readme.md", to: "README.md", caseOnly: true },
		]);
	});

	it("sends a case-only rename made on disk to the server", () => {
		const { w, id } = world([["readme.md", "h1"]]);
		moveLocal(w, "readme.md", "README.md");
		expect(planOf(w).actions).toMatchObject([{ kind: "move_remote", nodeId: id("readme.md"), name: "README.md" }]);
	});

	it("reports a local name the server refuses, and a case clash, without retrying them", () => {
		const { w } = world([]);
		w.local.set("CON.txt", { path: "CON.txt", type: "file", contentHash: "h1", size: 0, fileId: "i1" });
		w.local.set("b.txt", { path: "b.txt", type: "file", contentHash: "h2", size: 0, fileId: "i2" });
		w.local.set("B.TXT", { path: "B.TXT", type: "file", contentHash: "h3", size: 0, fileId: "i3" });
		const p = planOf(w);
		expect(p.problems.map((x) => [x.path, x.code])).toEqual([
			["CON.txt", "invalid_name"],
			["b.txt", "name_clash"],
		]);
		expect(p.actions).toMatchObject([{ kind: "upload", path: "B.TXT" }]);
	});

	it("swaps two names changed on the server through a temporary name", () => {
		const { w, id } = world([
			["a", "h1"],
			["b", "h2"],
		]);
		node(w, id("a")).name = "tmp";
		node(w, id("b")).name = "a";
		node(w, id("a")).name = "b";
		settle(w);
		expect(localFiles(w)).toEqual({ a: "h2", b: "h1" });
	});
});

describe("planner: safety", () => {
	it("never trashes or overwrites a local file that changed since it was synced", () => {
		const { w, id } = world([
			["a.txt", "h1"],
			["b.txt", "h1b"],
		]);
		node(w, id("a.txt")).trashed = true;
		editRemote(w, id("b.txt"), "theirs");
		editLocal(w, "a.txt", "mine-a");
		editLocal(w, "b.txt", "mine-b");
		const kinds = planOf(w).actions.map((a) => a.kind);
		expect(kinds).not.toContain("trash_local");
		expect(kinds).not.toContain("download");
	});

	it("holds back every deletion of a plan that deletes more than half of what is synced", () => {
		const files = Array.from({ length: 20 }, (_, i): [string, string] => [`f${i}`, `h${i}`]);
		const { w } = world(files);
		for (let i = 0; i < 11; i++) deleteLocal(w, `f${i}`);
		w.local.set("new.txt", { path: "new.txt", type: "file", contentHash: "hn", size: 0, fileId: "in" });
		const held = planOf(w, { force: false });
		expect(held.held).toEqual({ deletes: 11, synced: 20 });
		expect(held.actions.map((a) => a.kind)).toEqual(["upload"]);
		expect(planOf(w, { force: true }).actions.filter((a) => a.kind === "delete_remote")).toHaveLength(11);
	});
});
