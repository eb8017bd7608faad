/**
 * The sync planner: a pure function of the three trees (ADR 0029, after
 * Dropbox Nucleus, https://dropbox.tech/infrastructure/rewriting-the-heart-of-our-sync-engine).
 * R is the server as last pulled, L the disk as last scanned, S the merge base
 * (what both sides held when they last agreed). Each node gets at most one
 * action per plan; the engine runs the plan, updates S after each action, and
 * plans again until the plan is empty, so anything that must wait for
 * another action (a parent, a free name) simply waits for the next plan.
 */
import { checkName, conflictedCopyName, nameKey, splitExtension } from "../shared/names";

export type NodeType = "file" | "folder";

/** A live node of the server tree (trashed and deleted nodes are absent). */
export interface RemoteItem {
	nodeId: string;
	/** null only for the synced root. */
	parentId: string | null;
	name: string;
	type: NodeType;
	versionId: string | null;
	contentHash: string | null;
	size: number;
}

/** A scanned entry of the synced folder; `path` is relative, "/"-separated, NFC. */
export interface LocalItem {
	path: string;
	type: NodeType;
	contentHash: string | null;
	size: number;
	/** `dev:ino`: follows a rename, so a moved file is one move and not a delete plus a create. */
	fileId: string | null;
}

/** The merge base of one node: where and what it was when R and L last agreed. */
export interface SyncedItem {
	nodeId: string;
	path: string;
	type: NodeType;
	versionId: string | null;
	contentHash: string | null;
	size: number;
	fileId: string | null;
}

export interface Trees {
	/** R by node id, the root included. */
	remote: ReadonlyMap<string, RemoteItem>;
	/** L by path, the root ("") excluded. */
	local: ReadonlyMap<string, LocalItem>;
	/** S by node id, the root excluded. */
	synced: ReadonlyMap<string, SyncedItem>;
}

export interface PlanOptions {
	/** The server folder the local root mirrors. */
	rootId: string;
	/** Names the local copy moved aside when a new local item meets a new remote one. */
	deviceName: string;
	now: Date;
	/** Runs a plan the mass-delete guard refused. */
	force?: boolean;
	/** More deletions than this fraction of S trips the guard (default 0.5)... */
	maxDeleteFraction?: number;
	/** ...as does more than this many (default 1,000)... */
	maxDeletes?: number;
	/** ...but never fewer than this many (default 10): deleting a few files of a small folder is ordinary. */
	deleteFloor?: number;
}

/**
 * What the engine does, in the order given. `parentId` null means "the
 * folder this plan creates at the parent path": the engine looks it up in S,
 * which the earlier create updated. After each action that succeeds, the
 * engine updates S in one transaction (src/sync/fake-world.ts does the same
 * in memory, and the property tests hold only if the engine matches it):
 * creates, uploads, downloads and `record` set S to the node as both sides
 * now hold it; an upload answered with a conflicted copy sets only S's
 * content to what was uploaded (the bytes are safe in the copy, so the
 * winner may be downloaded over them); moves with a node id set its S path,
 * and the S paths of the nodes below it follow; `record_path` sets one S
 * path; deletes, `trash_local`, `forget` and a `create_folder` that
 * `replaces` drop the old S entry. A move with no node id changes no S.
 */
export type Action =
	/** `POST /v1/folders` at `path`; `replaces` is the S entry of a folder trashed remotely that the disk still needs. */
	| { kind: "create_folder"; path: string; parentId: string | null; replaces: string | null }
	/**
	 * Upload the file at `path`: a new file when `nodeId` is null, else a new
	 * version with `If-Match: ifMatch` (the server follows the node: a stale
	 * base becomes a conflicted copy, a trashed node comes back).
	 */
	| { kind: "upload"; path: string; parentId: string | null; nodeId: string | null; ifMatch: string | null; contentHash: string | null }
	/** `PATCH /v1/nodes/:id {parent_id, name}`; `to` is the local path it mirrors. */
	| { kind: "move_remote"; nodeId: string; from: string; to: string; parentId: string; name: string }
	/** `DELETE /v1/nodes/:id` (to the server trash). */
	| { kind: "delete_remote"; nodeId: string; path: string }
	| { kind: "mkdir_local"; nodeId: string; path: string }
	/**
	 * Download to a temporary file, then rename it onto `path`. `expect` is what
	 * must be at `path` right before the rename (null: nothing): anything else
	 * there is a local edit made meanwhile and aborts the download.
	 */
	| { kind: "download"; nodeId: string; versionId: string | null; contentHash: string | null; path: string; expect: Expected | null }
	/** `rename(2)`; `nodeId` null moves an item S does not know aside. `caseOnly` needs a temporary name on case-insensitive disks. */
	| { kind: "move_local"; nodeId: string | null; from: string; to: string; caseOnly: boolean }
	/** Move the local item into `.drive/trash/`, never unlink it. */
	| { kind: "trash_local"; nodeId: string; path: string; expect: Expected }
	/** Both sides already agree: S := R and L, no transfer. */
	| { kind: "record"; nodeId: string; path: string }
	/** Both sides moved the node to `path`: S's path (and its subtree's) follows; content is compared in the next plan. */
	| { kind: "record_path"; nodeId: string; path: string }
	/** Gone on both sides: drop S. */
	| { kind: "forget"; nodeId: string };

/** The local state an action relies on. */
export interface Expected {
	contentHash: string | null;
	fileId: string | null;
}

/** A local item the server would refuse: reported, skipped, not retried until it changes. */
export interface Problem {
	path: string;
	code: "invalid_name" | "name_clash" | "symlink";
	message: string;
}

export interface Plan {
	actions: Action[];
	problems: Problem[];
	/** Set when the mass-delete guard held back every deletion of this plan. */
	held: { deletes: number; synced: number } | null;
}

const parentOf = (path: string): string => {
	const slash = path.lastIndexOf("/");
	return slash < 0 ? "" : path.slice(0, slash);
};
const baseOf = (path: string): string => path.slice(path.lastIndexOf("/") + 1);
const join = (parent: string, name: string): string => (parent === "" ? name : `${parent}/${name}`);
const depth = (path: string): number => (path === "" ? 0 : path.split("/").length);
const within = (path: string, folder: string): boolean => path === folder || path.startsWith(`${folder}/`);
/** The case- and normalization-insensitive key of a whole path, as the server compares sibling names. */
const pathKey = (path: string): string => path.split("/").map(nameKey).join("/");

/** The paths of every R node reachable from the root; unreachable nodes count as gone. */
function remotePaths(remote: ReadonlyMap<string, RemoteItem>, rootId: string): Map<string, string> {
	const children = new Map<string, RemoteItem[]>();
	for (const r of remote.values()) {
		if (r.parentId === null) continue;
		const list = children.get(r.parentId) ?? [];
		list.push(r);
		children.set(r.parentId, list);
	}
	const out = new Map<string, string>([[rootId, ""]]);
	const stack = [rootId];
	while (stack.length > 0) {
		const id = stack.pop() as string;
		const base = out.get(id) as string;
		for (const child of children.get(id) ?? []) {
			if (out.has(child.nodeId)) continue;
			out.set(child.nodeId, join(base, child.name));
			stack.push(child.nodeId);
		}
	}
	return out;
}

/**
 * Where each S node is on disk now: wherever its file id is (a rename keeps
 * the inode), else at its synced path if something of its type is there whose
 * file id no other S node owns (an editor's safe-save writes a new inode:
 * that is an edit), else nowhere (deleted locally).
 */
function localPaths(trees: Trees): Map<string, string> {
	const byFileId = new Map<string, string>();
	for (const l of trees.local.values()) if (l.fileId !== null) byFileId.set(l.fileId, l.path);
	const owner = new Map<string, string>();
	for (const s of trees.synced.values()) if (s.fileId !== null) owner.set(s.fileId, s.nodeId);
	const out = new Map<string, string>();
	for (const s of trees.synced.values()) {
		const moved = s.fileId === null ? undefined : byFileId.get(s.fileId);
		if (moved !== undefined && trees.local.get(moved)?.type === s.type) {
			out.set(s.nodeId, moved);
			continue;
		}
		const here = trees.local.get(s.path);
		if (here === undefined || here.type !== s.type) continue;
		const other = here.fileId === null ? undefined : owner.get(here.fileId);
		if (other === undefined || other === s.nodeId) out.set(s.nodeId, s.path);
	}
	return out;
}

/** Plans the next round of actions; the table is in ADR 0029. */
export function plan(trees: Trees, options: PlanOptions): Plan {
	return new Planner(trees, options).run();
}

/** One planning pass. A class only to share the indexes between the steps; nothing outlives `run`. */
class Planner {
	readonly #t: Trees;
	readonly #o: PlanOptions;
	readonly #rPath: Map<string, string>;
	readonly #lPath: Map<string, string>;
	/** Local path → node id, for the root and every S node still on disk. */
	readonly #nodeAtLocal = new Map<string, string>();
	/** Remote path key → node id, for every live node. */
	readonly #remoteAtKey = new Map<string, string>();
	/** Local path key → local path (the disk may be case-sensitive, the server is not). */
	readonly #localAtKey = new Map<string, string>();
	readonly #localKids = new Map<string, string[]>();
	readonly #remoteKids = new Map<string, string[]>();

	readonly #creates: Action[] = [];
	readonly #moves: Action[] = [];
	readonly #contents: Action[] = [];
	readonly #deletes: Action[] = [];
	readonly #bookkeeping: Action[] = [];
	readonly #problems: Problem[] = [];
	/** Nodes that already have their action in this plan. */
	readonly #acted = new Set<string>();
	/** Local path keys that will be occupied after this plan's creates and moves. */
	readonly #localTaken = new Set<string>();
	/** Remote path keys that will be occupied. */
	readonly #remoteTaken = new Set<string>();
	/** Where nodes without a local path now will be (a folder made on disk in this plan). */
	readonly #plannedLocal = new Map<string, string>();
	/** Local paths of folders created on the server in this plan. */
	readonly #plannedRemote = new Set<string>();
	/** Node ids deleted on either side in this plan. */
	readonly #deleting = new Set<string>();
	/** Local paths moved away in this plan. */
	readonly #localLeaving = new Set<string>();
	/** Nodes moved on the server in this plan. */
	readonly #remoteLeaving = new Set<string>();

	constructor(trees: Trees, options: PlanOptions) {
		this.#t = trees;
		this.#o = options;
		this.#rPath = remotePaths(trees.remote, options.rootId);
		this.#lPath = localPaths(trees);
		this.#nodeAtLocal.set("", options.rootId);
		for (const [id, p] of this.#lPath) this.#nodeAtLocal.set(p, id);
		for (const [id, p] of this.#rPath) {
			if (id === options.rootId) continue;
			this.#remoteAtKey.set(pathKey(p), id);
			this.#remoteTaken.add(pathKey(p));
			const parent = trees.remote.get(id)?.parentId ?? "";
			const kids = this.#remoteKids.get(parent);
			if (kids) kids.push(id);
			else this.#remoteKids.set(parent, [id]);
		}
		for (const p of trees.local.keys()) {
			this.#localAtKey.set(pathKey(p), p);
			this.#localTaken.add(pathKey(p));
			const kids = this.#localKids.get(parentOf(p));
			if (kids) kids.push(p);
			else this.#localKids.set(parentOf(p), [p]);
		}
	}

	run(): Plan {
		this.#syncedNodes();
		this.#newRemote();
		this.#newLocal();
		this.#deletions();
		const o = this.#o;
		// Parents before children for creates; deletions were collected children first.
		this.#creates.sort((a, b) => depth(pathOf(a)) - depth(pathOf(b)));
		// A folder moved on disk in this plan changes the paths under it: what lies there waits for the next plan.
		const movingAway = this.#moves.flatMap((a) => (a.kind === "move_local" ? [a] : []));
		const waits = (a: Action) => localPathsOf(a).some((p) => movingAway.some((m) => m !== a && within(p, m.from)));
		// A file brought back from the server trash lands in a folder we cannot know yet: remote folder deletions wait a plan.
		const restoring = this.#contents.some((a) => a.kind === "upload" && a.nodeId !== null && !this.#rPath.has(a.nodeId));
		const later = (a: Action) => waits(a) || (restoring && a.kind === "delete_remote" && this.#t.synced.get(a.nodeId)?.type === "folder");
		const [creates, moves, contents, deletes] = [this.#creates, this.#moves, this.#contents, this.#deletes].map((list) =>
			list.filter((a) => !later(a)),
		) as [Action[], Action[], Action[], Action[]];
		const count = deletes.length;
		const synced = this.#t.synced.size;
		const trips = count >= (o.deleteFloor ?? 10) && (count > (o.maxDeletes ?? 1000) || count > (o.maxDeleteFraction ?? 0.5) * synced);
		const held = trips && o.force !== true ? { deletes: count, synced } : null;
		const actions = [...creates, ...moves, ...contents, ...(held ? [] : deletes), ...this.#bookkeeping];
		return { actions, problems: this.#problems, held };
	}

	/** The local path a node has, or will have once this plan's creates ran; null if none. */
	#localOf(id: string | null): string | null {
		if (id === null) return null;
		if (id === this.#o.rootId) return "";
		return this.#lPath.get(id) ?? this.#plannedLocal.get(id) ?? null;
	}

	/** The remote path of the folder at local path `p` (existing, or created in this plan), or null. */
	#remoteOfLocal(p: string): string | null {
		const id = this.#nodeAtLocal.get(p);
		if (id !== undefined) return this.#rPath.get(id) ?? null;
		if (!this.#plannedRemote.has(p)) return null;
		const parent = this.#remoteOfLocal(parentOf(p));
		return parent === null ? null : join(parent, baseOf(p));
	}

	/** The live server folder that the parent of local `path` mirrors; null when this plan creates it. */
	#remoteParent(path: string): string | null {
		const id = this.#nodeAtLocal.get(parentOf(path));
		return id !== undefined && this.#rPath.has(id) ? id : null;
	}

	/** A new version of a synced file, based on the version S holds (the If-Match base). */
	#uploadVersion(s: SyncedItem, l: LocalItem, path: string): void {
		const parentId = this.#remoteParent(path);
		this.#act(this.#contents, { kind: "upload", path, parentId, nodeId: s.nodeId, ifMatch: s.versionId, contentHash: l.contentHash });
	}

	#expectedAt(path: string): Expected {
		const l = this.#t.local.get(path);
		return { contentHash: l?.contentHash ?? null, fileId: l?.fileId ?? null };
	}

	/** Where remote node `r` belongs on disk, if its parent is (or will be) there as a folder. */
	#localTarget(r: RemoteItem): string | null {
		const parent = this.#localOf(r.parentId);
		if (parent === null || this.#t.local.get(parent)?.type === "file") return null;
		return join(parent, r.name);
	}

	/** Step 1: nodes S knows that are present on both sides. Location first; content waits for the next plan. */
	#syncedNodes(): void {
		const { remote, local, synced } = this.#t;
		for (const s of synced.values()) {
			const r = remote.get(s.nodeId);
			const rp = this.#rPath.get(s.nodeId);
			const lp = this.#lPath.get(s.nodeId);
			const l = lp === undefined ? undefined : local.get(lp);
			if (r === undefined || rp === undefined || l === undefined || lp === undefined) {
				if ((r === undefined || rp === undefined) && l === undefined) this.#act(this.#bookkeeping, { kind: "forget", nodeId: s.nodeId });
				continue; // gone on one side: step 4
			}
			if (r.type !== s.type) continue; // a node never changes type on this server

			if (rp !== s.path || lp !== s.path) {
				if (rp === lp) this.#act(this.#contents, { kind: "record_path", nodeId: s.nodeId, path: lp });
				else if (lp !== s.path)
					this.#moveRemote(s.nodeId, lp, rp); // both moved: ours is sent, the server serializes (ADR 0009)
				else this.#moveLocal(s.nodeId, r, lp);
				continue;
			}
			if (s.type === "folder") continue;

			const remoteChanged = r.versionId !== s.versionId || r.contentHash !== s.contentHash;
			const localChanged = l.contentHash !== s.contentHash;
			if (!remoteChanged && !localChanged) continue;
			if (r.contentHash === l.contentHash) this.#act(this.#contents, { kind: "record", nodeId: s.nodeId, path: lp });
			else if (localChanged) {
				// Changed on both sides too: If-Match makes the server keep ours as a conflicted copy.
				this.#uploadVersion(s, l, lp);
			} else {
				const { versionId, contentHash } = r;
				this.#act(this.#contents, { kind: "download", nodeId: s.nodeId, versionId, contentHash, path: lp, expect: this.#expectedAt(lp) });
			}
		}
	}

	#act(list: Action[], action: Action): void {
		list.push(action);
		if ("nodeId" in action && action.nodeId !== null) this.#acted.add(action.nodeId);
	}

	/** Moves a node on disk to where R has it; false when that must wait (parent missing, target taken). */
	#moveLocal(id: string, r: RemoteItem, from: string): boolean {
		const to = this.#localTarget(r);
		if (to === from) return false;
		const caseOnly = to !== null && pathKey(to) === pathKey(from);
		// A case-sensitive disk can hold the new case as another item: it steps aside first, never clobbered.
		if (caseOnly && this.#t.local.has(to)) {
			this.#moveAside(to, r.name, false, true);
			return false;
		}
		if (to === null || within(to, from) || (!caseOnly && this.#localTaken.has(pathKey(to)))) {
			if (to !== null) this.#moveAside(to, r.name);
			// Moves that wait on each other (a swap, or a folder that must make room for its new parent):
			// this one steps aside to a free name; S follows, so the next plan moves it on.
			const wanted = this.#remoteAtKey.get(pathKey(from));
			if (wanted === undefined || wanted === id) return false;
			const [stem, ext] = splitExtension(baseOf(from));
			const aside = this.#freeName(parentOf(from), `${stem} (moving)${ext}`);
			this.#act(this.#moves, { kind: "move_local", nodeId: id, from, to: aside, caseOnly: false });
			this.#localTaken.add(pathKey(aside));
			this.#localLeaving.add(from);
			return true;
		}
		this.#act(this.#moves, { kind: "move_local", nodeId: id, from, to, caseOnly });
		this.#localTaken.add(pathKey(to));
		this.#localLeaving.add(from);
		return true;
	}

	/** Moves a node on the server to where L has it; the remote place wins when the server would refuse. */
	#moveRemote(id: string, to: string, from: string): boolean {
		const name = baseOf(to);
		const check = checkName(name);
		if (!check.ok) {
			this.#problems.push({ path: to, code: "invalid_name", message: check.reason });
			return false;
		}
		const parentId = this.#nodeAtLocal.get(parentOf(to));
		const parentRemote = parentId === undefined ? undefined : this.#rPath.get(parentId);
		const r = this.#t.remote.get(id);
		if (parentId === undefined || parentRemote === undefined || r === undefined) return false;
		if (within(parentRemote, from)) return this.#moveLocal(id, r, to); // into its own subtree on the server
		if (r.parentId === parentId && r.name === name) return false; // only an ancestor moved: that move carries it
		const key = pathKey(join(parentRemote, name));
		const holder = this.#remoteAtKey.get(key);
		if (holder !== undefined && holder !== id) {
			this.#blockedBy(id, holder, to);
			return false;
		}
		if (holder === undefined && this.#remoteTaken.has(key)) return false; // taken by another action of this plan
		if (r.type === "folder" && !this.#noCycle(id, parentId)) return false;
		this.#act(this.#moves, { kind: "move_remote", nodeId: id, from, to, parentId, name });
		this.#remoteTaken.add(key);
		this.#remoteLeaving.add(id);
		return true;
	}

	/**
	 * Our node `id` moved to `to` on disk, and the server has `holder` there.
	 * Either the holder leaves in this plan or the next, or one side steps aside.
	 */
	#blockedBy(id: string, holder: string, to: string): void {
		if (this.#remoteLeaving.has(holder) || this.#deleting.has(holder)) return;
		const hs = this.#t.synced.get(holder);
		const hr = this.#t.remote.get(holder);
		const holderLocal = this.#lPath.get(holder);
		const holderRemoteMoved = hs !== undefined && this.#rPath.get(holder) !== hs.path;
		const holderChanged = hs !== undefined && hr !== undefined && (hr.versionId !== hs.versionId || hr.contentHash !== hs.contentHash);
		if (hs === undefined || holderRemoteMoved || (holderLocal === undefined && holderChanged)) {
			// The server's item wins the name (new, moved there, or edited there): ours steps aside on disk, and its next plan renames it.
			this.#moveAside(to, baseOf(to), true);
		} else if (holderLocal === undefined) {
			return; // deleted on disk: its deletion frees the name
		} else if (holderLocal !== hs.path && id < holder) {
			// Both moved on disk (a swap): one of them steps aside on the server, so that each can move in turn.
			this.#stepAsideRemote(id);
		} else if (holderLocal === hs.path) {
			this.#problems.push({ path: to, code: "name_clash", message: `"${to}" is taken on the server by "${holderLocal}"` });
		}
	}

	/**
	 * Folder moves checked against the snapshot can still make a cycle
	 * together (A into B, then B into what is now below A): a folder move whose
	 * target lies under a folder moved in this plan, or that moves a folder
	 * another move's target lies under, waits for the next plan.
	 */
	#noCycle(id: string, parentId: string): boolean {
		const chain = new Set<string>();
		for (let cur: string | null = parentId; cur !== null; cur = this.#t.remote.get(cur)?.parentId ?? null) chain.add(cur);
		if ([...this.#folderMoves.keys()].some((moving) => chain.has(moving))) return false;
		if ([...this.#folderMoves.values()].some((targets) => targets.has(id))) return false;
		this.#folderMoves.set(id, chain);
		return true;
	}

	/** Folders moved on the server in this plan, each with the chain of folders above its target. */
	readonly #folderMoves = new Map<string, Set<string>>();

	/** Renames node `id` on the server to a free temporary name in its folder; S follows, so a later plan moves it on. */
	#stepAsideRemote(id: string): void {
		const s = this.#t.synced.get(id);
		const r = this.#t.remote.get(id);
		if (s === undefined || r === undefined || r.parentId === null || this.#acted.has(id)) return;
		const [stem, ext] = splitExtension(baseOf(s.path));
		const aside = this.#freeName(parentOf(s.path), `${stem} (moving)${ext}`);
		this.#act(this.#moves, { kind: "move_remote", nodeId: id, from: s.path, to: aside, parentId: r.parentId, name: baseOf(aside) });
		this.#remoteTaken.add(pathKey(aside));
		this.#remoteLeaving.add(id);
	}

	/** Step 2: remote nodes S does not know (new on the server, or conflicted copies it made). */
	#newRemote(): void {
		const { remote, local, synced } = this.#t;
		const known = new Set(this.#lPath.values());
		const fresh = [...remote.values()]
			.filter((r) => r.nodeId !== this.#o.rootId && !synced.has(r.nodeId) && this.#rPath.has(r.nodeId))
			.sort((a, b) => depth(this.#rPath.get(a.nodeId) as string) - depth(this.#rPath.get(b.nodeId) as string));
		for (const r of fresh) {
			const path = this.#localTarget(r);
			if (path === null) continue;
			const herePath = this.#localAtKey.get(pathKey(path));
			const here = herePath === undefined ? undefined : local.get(herePath);
			if (here !== undefined && herePath !== undefined && !known.has(herePath)) {
				if (this.#claimed.has(herePath)) continue;
				// Created on both sides at one path: pair equal items, else move ours aside and keep both.
				if (here.type === r.type && herePath === path && (r.type === "folder" || here.contentHash === r.contentHash)) {
					this.#claimed.add(herePath);
					this.#act(this.#contents, { kind: "record", nodeId: r.nodeId, path });
					this.#plannedLocal.set(r.nodeId, path);
					continue;
				}
				this.#moveAside(path, r.name);
				continue;
			}
			if (this.#localTaken.has(pathKey(path))) continue;
			this.#localTaken.add(pathKey(path));
			this.#plannedLocal.set(r.nodeId, path);
			if (r.type === "folder") this.#act(this.#creates, { kind: "mkdir_local", nodeId: r.nodeId, path });
			else {
				const { nodeId, versionId, contentHash } = r;
				this.#act(this.#contents, { kind: "download", nodeId, versionId, contentHash, path, expect: null });
			}
		}
	}

	/**
	 * Moves a local item S does not know out of the way of a remote item
	 * that `path` must hold, as a conflicted copy: it is uploaded under that
	 * name in a later plan, and both survive.
	 */
	#moveAside(path: string, remoteName: string, known = false, exact = false): void {
		const herePath = exact ? path : this.#localAtKey.get(pathKey(path));
		if (herePath === undefined || this.#claimed.has(herePath) || this.#localLeaving.has(herePath)) return; // already moving
		if (!known && this.#nodeAtLocal.has(herePath)) return;
		this.#claimed.add(herePath);
		const aside = this.#freeName(parentOf(path), conflictedCopyName(remoteName, this.#o.deviceName, this.#o.now));
		this.#moves.push({ kind: "move_local", nodeId: null, from: herePath, to: aside, caseOnly: false });
		this.#localTaken.add(pathKey(aside));
		this.#localLeaving.add(herePath);
	}

	/**
	 * A remote item needs `path` on disk: an unknown item there steps aside,
	 * and so does a known one the user moved there (the server keeps that
	 * name for the other item; ours is renamed on the server in a later plan).
	 */
	#makeRoom(path: string, remoteName: string): void {
		const herePath = this.#localAtKey.get(pathKey(path));
		if (herePath === undefined) return;
		const id = this.#nodeAtLocal.get(herePath);
		this.#moveAside(path, remoteName, id !== undefined && this.#t.synced.get(id)?.path !== herePath);
	}

	/** Local paths already given an action here (paired with a remote item, or moved aside). */
	readonly #claimed = new Set<string>();

	/** `name`, or `name` with " 2", " 3"… inside its closing parenthesis, free on both sides. */
	#freeName(parent: string, name: string): string {
		for (let n = 1; ; n++) {
			const candidate = join(parent, n === 1 ? name : name.replace(/\)(\.[^.]*)?$/u, ` ${n})$1`));
			if (!this.#localTaken.has(pathKey(candidate)) && !this.#remoteTaken.has(pathKey(candidate))) return candidate;
		}
	}

	/** Step 3: local items S does not know (new on disk). */
	#newLocal(): void {
		const known = new Set(this.#lPath.values());
		const fresh = [...this.#t.local.values()]
			.filter((l) => !known.has(l.path) && !this.#claimed.has(l.path))
			.sort((a, b) => depth(a.path) - depth(b.path) || (a.path < b.path ? -1 : 1));
		const skipped: string[] = [];
		const seen = new Map<string, string>();
		for (const l of fresh) {
			if (skipped.some((p) => within(l.path, p))) continue;
			const check = checkName(baseOf(l.path));
			if (!check.ok) {
				this.#problems.push({ path: l.path, code: "invalid_name", message: check.reason });
				skipped.push(l.path);
				continue;
			}
			const twin = seen.get(pathKey(l.path));
			if (twin !== undefined) {
				this.#problems.push({ path: l.path, code: "name_clash", message: `the server cannot hold both "${l.path}" and "${twin}"` });
				skipped.push(l.path);
				continue;
			}
			seen.set(pathKey(l.path), l.path);
			const parentRemote = this.#remoteOfLocal(parentOf(l.path));
			if (parentRemote === null) continue;
			const key = pathKey(join(parentRemote, baseOf(l.path)));
			const holder = this.#remoteAtKey.get(key);
			if (holder !== undefined) {
				const holderLocal = this.#lPath.get(holder);
				const hs = this.#t.synced.get(holder);
				// Held by a node the user moved away, maybe into this very folder: it steps aside on the server.
				if (hs !== undefined && holderLocal !== undefined && holderLocal !== hs.path && !this.#remoteLeaving.has(holder)) {
					this.#stepAsideRemote(holder);
					continue;
				}
				// Taken by a node that stays on disk under another case: only the user can choose.
				if (holderLocal !== undefined && holderLocal !== l.path && pathKey(holderLocal) === pathKey(l.path)) {
					this.#problems.push({
						path: l.path,
						code: "name_clash",
						message: `the server cannot hold both "${l.path}" and "${holderLocal}"`,
					});
					skipped.push(l.path);
				}
				continue;
			}
			if (this.#remoteTaken.has(key)) continue;
			this.#remoteTaken.add(key);
			if (l.type === "folder") {
				this.#creates.push({ kind: "create_folder", path: l.path, parentId: this.#remoteParent(l.path), replaces: null });
				this.#plannedRemote.add(l.path);
			} else {
				const parentId = this.#remoteParent(l.path);
				this.#contents.push({ kind: "upload", path: l.path, parentId, nodeId: null, ifMatch: null, contentHash: l.contentHash });
			}
		}
	}

	/**
	 * Step 4: nodes gone on one side, children before parents. A side loses
	 * only what it still held as S knew it: an edit beats a delete, both ways.
	 */
	#deletions(): void {
		const { remote, local, synced } = this.#t;
		const incoming = new Set<string>();
		for (const a of [...this.#creates, ...this.#moves, ...this.#contents]) {
			if (a.kind === "move_local" || a.kind === "move_remote") incoming.add(parentOf(a.to));
			else if (a.kind !== "forget" && a.kind !== "record" && a.kind !== "record_path") incoming.add(parentOf(a.path));
		}
		const deepestFirst = [...synced.values()].sort((a, b) => depth(b.path) - depth(a.path) || (a.path < b.path ? -1 : 1));
		for (const s of deepestFirst) {
			if (this.#acted.has(s.nodeId)) continue;
			const r = remote.get(s.nodeId);
			const rp = this.#rPath.get(s.nodeId);
			const lp = this.#lPath.get(s.nodeId);
			const l = lp === undefined ? undefined : local.get(lp);
			if ((r === undefined || rp === undefined) && l !== undefined && lp !== undefined) this.#goneRemotely(s, l, lp, incoming);
			else if (r !== undefined && rp !== undefined && l === undefined) this.#goneLocally(s, r, rp, incoming);
		}
	}

	#goneRemotely(s: SyncedItem, l: LocalItem, lp: string, incoming: Set<string>): void {
		if (s.type === "file") {
			if (l.contentHash === s.contentHash) {
				this.#act(this.#deletes, { kind: "trash_local", nodeId: s.nodeId, path: lp, expect: this.#expectedAt(lp) });
				this.#deleting.add(s.nodeId);
			} else {
				// Edit beats delete: If-Match lets the server bring the file back with our content.
				this.#uploadVersion(s, l, lp);
			}
			return;
		}
		const stays = (this.#localKids.get(lp) ?? []).filter((p) => {
			const id = this.#nodeAtLocal.get(p);
			return id === undefined || !this.#deleting.has(id);
		});
		if (stays.length === 0 && !incoming.has(lp)) {
			this.#act(this.#deletes, { kind: "trash_local", nodeId: s.nodeId, path: lp, expect: this.#expectedAt(lp) });
			this.#deleting.add(s.nodeId);
		} else if (!stays.every((p) => this.#localLeaving.has(p))) {
			// Something under it stays: the server needs the folder again, unless a new item took its name there.
			const parent = this.#remoteOfLocal(parentOf(lp));
			if (parent === null) return;
			const key = pathKey(join(parent, baseOf(lp)));
			if (this.#remoteTaken.has(key)) return this.#moveAside(lp, baseOf(lp), true);
			this.#remoteTaken.add(key);
			this.#act(this.#creates, { kind: "create_folder", path: lp, parentId: this.#remoteParent(lp), replaces: s.nodeId });
			this.#plannedRemote.add(lp);
		}
	}

	#goneLocally(s: SyncedItem, r: RemoteItem, rp: string, incoming: Set<string>): void {
		if (s.type === "file") {
			if (r.versionId === s.versionId && r.contentHash === s.contentHash) {
				this.#act(this.#deletes, { kind: "delete_remote", nodeId: s.nodeId, path: rp });
				this.#deleting.add(s.nodeId);
				return;
			}
			// A remote edit beats a local delete: download it again.
			const path = this.#localTarget(r);
			if (path === null) return;
			if (this.#localTaken.has(pathKey(path))) return this.#makeRoom(path, r.name);
			this.#localTaken.add(pathKey(path));
			const { versionId, contentHash } = r;
			this.#act(this.#contents, { kind: "download", nodeId: s.nodeId, versionId, contentHash, path, expect: null });
			return;
		}
		const stays = (this.#remoteKids.get(s.nodeId) ?? []).filter((id) => !this.#deleting.has(id));
		if (stays.length === 0 && !incoming.has(s.path)) {
			this.#act(this.#deletes, { kind: "delete_remote", nodeId: s.nodeId, path: rp });
			this.#deleting.add(s.nodeId);
		} else if (!stays.every((id) => this.#remoteLeaving.has(id))) {
			// Something under it stays on the server: the disk needs the folder again.
			const path = this.#localTarget(r);
			if (path === null) return;
			if (this.#localTaken.has(pathKey(path))) return this.#makeRoom(path, r.name);
			this.#localTaken.add(pathKey(path));
			this.#plannedLocal.set(s.nodeId, path);
			this.#act(this.#creates, { kind: "mkdir_local", nodeId: s.nodeId, path });
		}
	}
}

/** The local paths an action reads or writes (a remote delete names a remote path: none). */
function localPathsOf(a: Action): string[] {
	switch (a.kind) {
		case "move_local":
			return [a.from, a.to];
		case "move_remote":
			return [a.to];
		case "delete_remote":
		case "forget":
			return [];
		default:
			return [a.path];
	}
}

function pathOf(a: Action): string {
	return "path" in a ? a.path : "";
}
