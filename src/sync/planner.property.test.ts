/**
 * Randomized properties of the planner, after Dropbox's CanopyCheck
 * (https://dropbox.tech/infrastructure/-testing-our-new-sync-engine): one
 * random tree is perturbed on the server and on disk into (R, L, S), then
 * "plan, apply as if every action succeeded, plan again" runs until the plan
 * is empty. Seeded and shrinkable: a failure prints its seed and the
 * smallest counterexample fast-check found.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FakeWorld, ROOT, type ServerNode } from "./fake-world";
import { nameKey } from "../shared/names";
import { type Action, plan, type PlanOptions } from "./planner";

const SEED = Number(process.env.PLANNER_SEED ?? 20261203);
const RUNS = Number(process.env.PLANNER_RUNS ?? 300);
const MAX_ROUNDS = 100;
// PLANNER_SIZE=3 for bigger trees and more changes per side.
const SIZE = Number(process.env.PLANNER_SIZE ?? 1);

// Few names, with a case variant, so that collisions and case-only renames are common.
const NAMES = ["a", "b", "c", "A", "d.txt"];

type Op =
	| { op: "edit"; i: number; newInode: boolean }
	| { op: "delete"; i: number }
	| { op: "move"; i: number; j: number; name: string }
	| { op: "create"; j: number; name: string; folder: boolean };

const name = fc.constantFrom(...NAMES);
const index = fc.nat({ max: 40 });
const op: fc.Arbitrary<Op> = fc.oneof(
	fc.record({ op: fc.constant("edit" as const), i: index, newInode: fc.boolean() }),
	fc.record({ op: fc.constant("delete" as const), i: index }),
	fc.record({ op: fc.constant("move" as const), i: index, j: index, name }),
	fc.record({ op: fc.constant("create" as const), j: index, name, folder: fc.boolean() }),
);
const creation = fc.record({ op: fc.constant("create" as const), j: index, name, folder: fc.boolean() });

const within = (p: string, folder: string) => p === folder || p.startsWith(`${folder}/`);
const join = (parent: string, n: string) => (parent === "" ? n : `${parent}/${n}`);

let contentSeq = 0;
const freshContent = () => `h${++contentSeq}`;

/** Builds the base tree on the server, on disk and in S alike (R = L = S). */
function baseWorld(creations: Op[]): FakeWorld {
	const w = new FakeWorld();
	for (const c of creations) serverOp(w, c);
	for (const n of w.server.values()) {
		if (n.nodeId === ROOT) continue;
		const path = w.remotePath(n.nodeId);
		const fileId = w.newId("i");
		w.local.set(path, { path, type: n.type, contentHash: n.contentHash, size: 0, fileId });
		w.synced.set(n.nodeId, { nodeId: n.nodeId, path, type: n.type, versionId: n.versionId, contentHash: n.contentHash, size: 0, fileId });
	}
	return w;
}

/** A change made on the server by another device. */
function serverOp(w: FakeWorld, o: Op): void {
	const nodes = [...w.server.values()].filter((n) => n.nodeId !== ROOT && w.live(n.nodeId));
	nodes.sort((a, b) => (w.remotePath(a.nodeId) < w.remotePath(b.nodeId) ? -1 : 1));
	const folders: ServerNode[] = [w.server.get(ROOT) as ServerNode, ...nodes.filter((n) => n.type === "folder")];
	const pick = <T>(list: T[], i: number): T | undefined => (list.length === 0 ? undefined : list[i % list.length]);
	if (o.op === "create") {
		const parent = pick(folders, o.j) as ServerNode;
		if (!w.holder(parent.nodeId, o.name))
			w.serverCreate(parent.nodeId, o.name, o.folder ? "folder" : "file", o.folder ? null : freshContent());
		return;
	}
	const node = pick(nodes, o.i);
	if (node === undefined) return;
	if (o.op === "edit") {
		if (node.type !== "file") return;
		node.versionId = w.newId("v");
		node.contentHash = freshContent();
	} else if (o.op === "delete") node.trashed = true;
	else {
		const target = pick(folders, o.j) as ServerNode;
		if (within(w.remotePath(target.nodeId), w.remotePath(node.nodeId)) && target.nodeId !== ROOT) return;
		const holder = w.holder(target.nodeId, o.name);
		if (holder !== undefined && holder.nodeId !== node.nodeId) return;
		node.parentId = target.nodeId;
		node.name = o.name;
	}
}

/** Whether a path is taken on a case-insensitive disk (APFS, NTFS defaults), the kind this property models. */
const takenLocally = (w: FakeWorld, path: string) =>
	process.env.PLANNER_DISK === "case-sensitive" ? w.local.has(path) : [...w.local.keys()].some((p) => nameKey(p) === nameKey(path));

/** A change made on disk by the user. */
function localOp(w: FakeWorld, o: Op): void {
	const paths = [...w.local.keys()].sort();
	const folders = ["", ...paths.filter((p) => w.local.get(p)?.type === "folder")];
	const pick = <T>(list: T[], i: number): T | undefined => (list.length === 0 ? undefined : list[i % list.length]);
	if (o.op === "create") {
		const path = join(pick(folders, o.j) as string, o.name);
		if (takenLocally(w, path)) return;
		w.local.set(path, {
			path,
			type: o.folder ? "folder" : "file",
			contentHash: o.folder ? null : freshContent(),
			size: 0,
			fileId: w.newId("i"),
		});
		return;
	}
	const path = pick(paths, o.i);
	if (path === undefined) return;
	const item = w.local.get(path);
	if (item === undefined) return;
	if (o.op === "edit") {
		if (item.type !== "file") return;
		// An editor's safe-save writes a new file and renames it over the old one: a new inode.
		w.local.set(path, { ...item, contentHash: freshContent(), fileId: o.newInode ? w.newId("i") : item.fileId });
	} else if (o.op === "delete") {
		for (const p of [...w.local.keys()]) if (within(p, path)) w.local.delete(p);
	} else {
		const to = join(pick(folders, o.j) as string, o.name);
		if (within(to, path) || (takenLocally(w, to) && nameKey(to) !== nameKey(path))) return;
		for (const [p, l] of [...w.local]) {
			if (!within(p, path)) continue;
			w.local.delete(p);
			const moved = to + p.slice(path.length);
			w.local.set(moved, { ...l, path: moved });
		}
	}
}

/** The live server tree as path → "type:content", without the subtrees at `skip`. */
function remoteTree(w: FakeWorld, skip: string[] = []): Map<string, string> {
	const out = new Map<string, string>();
	for (const n of w.server.values()) {
		if (n.nodeId === ROOT || !w.live(n.nodeId)) continue;
		const path = w.remotePath(n.nodeId);
		if (!skip.some((p) => within(path, p))) out.set(path, `${n.type}:${n.contentHash}`);
	}
	return out;
}

/** Where the server has the synced nodes of the local items under `problems` (they stay there until the user acts). */
function remoteOfProblems(w: FakeWorld, problems: string[]): string[] {
	const fileIds = new Set([...w.local.values()].filter((l) => problems.some((p) => within(l.path, p))).map((l) => l.fileId));
	return [...w.synced.values()].filter((s) => fileIds.has(s.fileId) && w.live(s.nodeId)).map((s) => w.remotePath(s.nodeId));
}

function localTree(w: FakeWorld, skip: string[]): Map<string, string> {
	const out = new Map<string, string>();
	for (const l of w.local.values()) if (!skip.some((p) => within(l.path, p))) out.set(l.path, `${l.type}:${l.contentHash}`);
	return out;
}

function options(w: FakeWorld, force = true): PlanOptions {
	return { rootId: ROOT, deviceName: w.device, now: w.now, force };
}

/** Safety, checked before each action runs: nothing on disk that differs from S is overwritten or removed. */
function assertSafe(w: FakeWorld, a: Action): void {
	if ((a.kind === "download" && a.expect !== null) || a.kind === "trash_local") {
		const l = w.local.get(a.path);
		const s = w.synced.get(a.nodeId);
		expect(l, `${a.kind} "${a.path}" has a local item`).toBeDefined();
		expect(s, `${a.kind} "${a.path}" has a synced base`).toBeDefined();
		if (l?.type === "file") expect(l.contentHash, `${a.kind} "${a.path}" would lose a local edit`).toBe(s?.contentHash);
	}
}

/** Plan, apply, repeat; returns the rounds it took and the problems of the last plan. */
function converge(w: FakeWorld): { rounds: number; problems: string[]; trace: string } {
	const trace: string[] = [];
	for (let round = 1; round <= MAX_ROUNDS; round++) {
		const p = plan(w.trees(), options(w));
		trace.push(JSON.stringify(p.actions));
		if (p.actions.length === 0) return { rounds: round, problems: p.problems.map((x) => x.path), trace: trace.join("\n") };
		try {
			for (const a of p.actions) {
				assertSafe(w, a);
				w.apply(a);
			}
		} catch (err) {
			throw new Error(`${(err as Error).message}\nplans so far:\n${trace.join("\n")}`, { cause: err });
		}
	}
	throw new Error(`no convergence in ${MAX_ROUNDS} rounds:\n${trace.slice(0, 6).join("\n")}`);
}

const scenario = fc.record({
	base: fc.array(creation, { maxLength: 12 * SIZE }),
	remoteOps: fc.array(op, { maxLength: 8 * SIZE }),
	localOps: fc.array(op, { maxLength: 8 * SIZE }),
});

describe("planner properties (seeded, shrinkable)", () => {
	it("plans nothing when R = L = S", () => {
		fc.assert(
			fc.property(fc.array(creation, { maxLength: 20 }), (base) => {
				const w = baseWorld(base);
				const p = plan(w.trees(), options(w));
				expect(p.actions).toEqual([]);
				expect(p.problems).toEqual([]);
			}),
			{ seed: SEED, numRuns: RUNS },
		);
	});

	it("converges to equal trees, never loses content, never touches an unsynced local edit", () => {
		fc.assert(
			fc.property(scenario, ({ base, remoteOps, localOps }) => {
				const w = baseWorld(base);
				const baseContents = new Set([...w.synced.values()].map((s) => s.contentHash));
				for (const o of remoteOps) serverOp(w, o);
				for (const o of localOps) localOp(w, o);
				// Content written on either side since S: it must survive, as a file or a conflicted copy.
				const written = new Set<string>();
				for (const c of [...remoteTree(w).values(), ...localTree(w, []).values()]) {
					const hash = c.slice(c.indexOf(":") + 1);
					if (c.startsWith("file:") && !baseContents.has(hash)) written.add(hash);
				}

				const start = JSON.stringify({ remote: [...remoteTree(w)], local: [...localTree(w, [])] });
				if (process.env.PLANNER_TRACE) console.log(start);
				const { problems, trace } = converge(w);
				const remote = remoteTree(w, remoteOfProblems(w, problems));
				const local = localTree(w, problems);
				expect(Object.fromEntries([...local].sort()), `${start}\n${trace}`).toEqual(Object.fromEntries([...remote].sort()));
				const survived = new Set([...remoteTree(w).values(), ...localTree(w, []).values()].map((c) => c.slice(c.indexOf(":") + 1)));
				for (const hash of written) expect(survived.has(hash), `content ${hash} was lost`).toBe(true);
				// And once converged, a second plan is still empty (no echo loop).
				expect(plan(w.trees(), options(w)).actions).toEqual([]);
			}),
			{ seed: SEED, numRuns: RUNS },
		);
	});

	it("holds back a plan that deletes more than the guard allows, unless forced", () => {
		fc.assert(
			fc.property(fc.integer({ min: 1, max: 60 }), fc.integer({ min: 0, max: 60 }), (files, deleted) => {
				const w = new FakeWorld();
				for (let i = 0; i < files; i++) {
					const n = w.serverCreate(ROOT, `f${i}`, "file", freshContent());
					const fileId = w.newId("i");
					w.local.set(n.name, { path: n.name, type: "file", contentHash: n.contentHash, size: 0, fileId });
					w.synced.set(n.nodeId, {
						nodeId: n.nodeId,
						path: n.name,
						type: "file",
						versionId: n.versionId,
						contentHash: n.contentHash,
						size: 0,
						fileId,
					});
				}
				const gone = Math.min(deleted, files);
				for (let i = 0; i < gone; i++) w.local.delete(`f${i}`);
				const opts = { ...options(w, false), maxDeletes: 40 };
				const p = plan(w.trees(), opts);
				const trips = gone >= 10 && (gone > 40 || gone > 0.5 * files);
				expect(p.held !== null).toBe(trips);
				const deletes = p.actions.filter((a) => a.kind === "delete_remote");
				expect(deletes.length).toBe(trips ? 0 : gone);
				expect(plan(w.trees(), { ...opts, force: true }).actions.filter((a) => a.kind === "delete_remote").length).toBe(gone);
			}),
			{ seed: SEED, numRuns: 100 },
		);
	});
});
