/**
 * An in-memory server, disk and S for the planner's tests: applies actions
 * as if they succeeded, with the server's rules of docs/api.md (conflicted
 * copies, edit beats delete, names unique by key). An action the real engine
 * could not run (a taken name, a missing parent, a local file that is not as
 * expected) throws: for the tests that is a planner bug.
 */
import { conflictedCopyName, nameKey } from "../shared/names";
import type { Action, LocalItem, NodeType, RemoteItem, SyncedItem, Trees } from "./planner";

/** A server node; trashed nodes stay, flagged, so that an edit can bring them back. */
export interface ServerNode extends RemoteItem {
	trashed: boolean;
}

export const ROOT = "root";
const parentOf = (p: string) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
const baseOf = (p: string) => p.slice(p.lastIndexOf("/") + 1);
const within = (p: string, folder: string) => p === folder || p.startsWith(`${folder}/`);

export class FakeWorld {
	readonly server = new Map<string, ServerNode>();
	readonly local = new Map<string, LocalItem>();
	readonly synced = new Map<string, SyncedItem>();
	/** What trash_local moved into `.drive/trash/`. */
	readonly localTrash: LocalItem[] = [];
	readonly device = "laptop";
	readonly now = new Date("2026-12-03T12:00:00Z");
	#seq = 0;

	constructor() {
		this.server.set(ROOT, {
			nodeId: ROOT,
			parentId: null,
			name: "",
			type: "folder",
			versionId: null,
			contentHash: null,
			size: 0,
			trashed: false,
		});
	}

	newId(prefix: string): string {
		return `${prefix}${++this.#seq}`;
	}

	/** R as the client mirrors it: every node not trashed itself (children of a trashed folder stay, unreachable). */
	trees(): Trees {
		const remote = new Map<string, ServerNode>();
		for (const n of this.server.values()) if (!n.trashed) remote.set(n.nodeId, n);
		return { remote, local: this.local, synced: this.synced };
	}

	/** True if the node and all its ancestors are live. */
	live(id: string): boolean {
		for (let n = this.server.get(id); n !== undefined; n = n.parentId === null ? undefined : this.server.get(n.parentId)) {
			if (n.trashed) return false;
			if (n.parentId === null) return n.nodeId === ROOT;
		}
		return false;
	}

	remotePath(id: string): string {
		const names: string[] = [];
		for (let n = this.server.get(id); n !== undefined && n.parentId !== null; n = this.server.get(n.parentId)) names.unshift(n.name);
		return names.join("/");
	}

	liveChildren(id: string): ServerNode[] {
		return [...this.server.values()].filter((n) => n.parentId === id && !n.trashed);
	}

	/** The live sibling of `parentId` whose name has this key, if any. */
	holder(parentId: string, name: string): ServerNode | undefined {
		return this.liveChildren(parentId).find((n) => nameKey(n.name) === nameKey(name));
	}

	/** The live server folder S has at local path `p` (the root for ""). */
	#remoteFolderAt(p: string): string {
		if (p === "") return ROOT;
		// S paths may repeat (a stale one beside a fresh one): the live folder is the one meant.
		const s = [...this.synced.values()].find((x) => x.path === p && x.type === "folder" && this.live(x.nodeId));
		if (s === undefined) throw new Error(`no live synced folder at "${p}"`);
		return s.nodeId;
	}

	/** Server: a new node (as a web client or this engine would make it). */
	serverCreate(parentId: string, name: string, type: NodeType, contentHash: string | null): ServerNode {
		if (!this.live(parentId) || this.server.get(parentId)?.type !== "folder") throw new Error(`parent ${parentId} is not a live folder`);
		if (this.holder(parentId, name)) throw new Error(`NAME_TAKEN ${name}`);
		const nodeId = this.newId("n");
		const node: ServerNode = {
			nodeId,
			parentId,
			name,
			type,
			versionId: type === "file" ? this.newId("v") : null,
			contentHash,
			size: 0,
			trashed: false,
		};
		this.server.set(nodeId, node);
		return node;
	}

	/** Server: a conflicted copy of `of` holding `contentHash`, beside it in `folderId`. */
	#conflictedCopy(of: ServerNode, folderId: string, contentHash: string | null): ServerNode {
		const base = conflictedCopyName(of.name, this.device, this.now);
		for (let n = 1; ; n++) {
			const name = n === 1 ? base : base.replace(/\)(\.[^.]*)?$/u, ` ${n})$1`);
			if (!this.holder(folderId, name)) return this.serverCreate(folderId, name, "file", contentHash);
		}
	}

	/** The nearest live folder at or above `id` (the root at worst): where the server restores into. */
	#nearestLive(id: string | null): string {
		for (let cur = id; cur !== null; cur = this.server.get(cur)?.parentId ?? null) if (this.live(cur)) return cur;
		return ROOT;
	}

	#setSynced(nodeId: string, path: string): void {
		const r = this.server.get(nodeId);
		const l = this.local.get(path);
		if (r === undefined || l === undefined) throw new Error(`cannot record ${nodeId} at "${path}"`);
		this.synced.set(nodeId, {
			nodeId,
			path,
			type: r.type,
			versionId: r.versionId,
			contentHash: r.contentHash,
			size: 0,
			fileId: l.fileId,
		});
	}

	/** After a move of a synced node to `to`: its S path is `to`, and the S paths of the nodes below it follow. */
	#moveSyncedPaths(nodeId: string, to: string): void {
		const from = this.synced.get(nodeId)?.path;
		if (from === undefined) return;
		for (const s of this.synced.values()) {
			if (within(s.path, from) && this.#descends(s.nodeId, nodeId)) s.path = to + s.path.slice(from.length);
		}
		(this.synced.get(nodeId) as SyncedItem).path = to;
	}

	/** True if `id` is `ancestor` or below it on the server (S paths can be stale; node ids cannot). */
	#descends(id: string, ancestor: string): boolean {
		for (let cur: string | null = id; cur !== null; cur = this.server.get(cur)?.parentId ?? null) if (cur === ancestor) return true;
		return false;
	}

	#expectLocal(path: string, expect: { contentHash: string | null; fileId: string | null } | null): void {
		const l = this.local.get(path);
		if (expect === null) {
			if (l !== undefined) throw new Error(`"${path}" exists`);
			return;
		}
		if (l === undefined || l.contentHash !== expect.contentHash || l.fileId !== expect.fileId) throw new Error(`"${path}" changed`);
	}

	#needLocalFolder(path: string): void {
		if (path !== "" && this.local.get(path)?.type !== "folder") throw new Error(`no local folder "${path}"`);
	}

	#freeLocal(path: string): void {
		const key = nameKey(path);
		for (const p of this.local.keys()) if (nameKey(p) === key) throw new Error(`local "${path}" is taken by "${p}"`);
	}

	/** Runs one action as the engine would, with the server's answers. */
	apply(a: Action): void {
		switch (a.kind) {
			case "create_folder": {
				if (this.local.get(a.path)?.type !== "folder") throw new Error(`no local folder "${a.path}"`);
				const node = this.serverCreate(a.parentId ?? this.#remoteFolderAt(parentOf(a.path)), baseOf(a.path), "folder", null);
				if (a.replaces !== null) this.synced.delete(a.replaces);
				this.#setSynced(node.nodeId, a.path);
				return;
			}
			case "upload":
				return this.#upload(a);
			case "move_remote": {
				const node = this.server.get(a.nodeId);
				const s = this.synced.get(a.nodeId);
				if (node === undefined || s === undefined || !this.live(a.nodeId)) throw new Error(`cannot move ${a.nodeId}`);
				const parentId = a.parentId;
				for (let p: string | null = parentId; p !== null; p = this.server.get(p)?.parentId ?? null) {
					if (p === a.nodeId) throw new Error("a folder into its own subtree");
				}
				if (!this.live(parentId)) throw new Error(`move into a folder that is not live`);
				const taken = this.holder(parentId, a.name);
				if (taken !== undefined && taken.nodeId !== a.nodeId) throw new Error(`NAME_TAKEN ${a.to}`);
				node.parentId = parentId;
				node.name = a.name;
				this.#moveSyncedPaths(a.nodeId, a.to);
				return;
			}
			case "delete_remote": {
				if (!this.live(a.nodeId)) throw new Error(`${a.nodeId} is not live`);
				if (this.liveChildren(a.nodeId).length > 0) throw new Error(`${a.nodeId} still has children`);
				(this.server.get(a.nodeId) as ServerNode).trashed = true;
				this.synced.delete(a.nodeId);
				return;
			}
			case "mkdir_local": {
				this.#freeLocal(a.path);
				this.#needLocalFolder(parentOf(a.path));
				this.local.set(a.path, { path: a.path, type: "folder", contentHash: null, size: 0, fileId: this.newId("i") });
				this.#setSynced(a.nodeId, a.path);
				return;
			}
			case "download": {
				const node = this.server.get(a.nodeId);
				if (node === undefined || !this.live(a.nodeId) || node.versionId !== a.versionId) throw new Error(`stale download ${a.nodeId}`);
				this.#expectLocal(a.path, a.expect);
				if (a.expect === null) this.#freeLocal(a.path);
				this.#needLocalFolder(parentOf(a.path));
				this.local.set(a.path, { path: a.path, type: "file", contentHash: a.contentHash, size: 0, fileId: this.newId("i") });
				this.#setSynced(a.nodeId, a.path);
				return;
			}
			case "move_local": {
				if (!this.local.has(a.from)) throw new Error(`no local "${a.from}"`);
				if (!a.caseOnly) this.#freeLocal(a.to);
				else if (this.local.has(a.to)) throw new Error(`case-only rename onto an existing "${a.to}"`);
				this.#needLocalFolder(parentOf(a.to));
				if (within(a.to, a.from)) throw new Error("a folder into itself");
				for (const [p, l] of [...this.local]) {
					if (!within(p, a.from)) continue;
					this.local.delete(p);
					const moved = a.to + p.slice(a.from.length);
					this.local.set(moved, { ...l, path: moved });
				}
				if (a.nodeId !== null) this.#moveSyncedPaths(a.nodeId, a.to);
				return;
			}
			case "trash_local": {
				this.#expectLocal(a.path, a.expect);
				if ([...this.local.keys()].some((p) => p !== a.path && within(p, a.path))) throw new Error(`"${a.path}" is not empty`);
				this.localTrash.push(this.local.get(a.path) as LocalItem);
				this.local.delete(a.path);
				this.synced.delete(a.nodeId);
				return;
			}
			case "record": {
				const node = this.server.get(a.nodeId);
				const l = this.local.get(a.path);
				if (node === undefined || l === undefined || node.type !== l.type || node.contentHash !== l.contentHash) {
					throw new Error(`record of unequal ${a.nodeId} "${a.path}"`);
				}
				this.#setSynced(a.nodeId, a.path);
				return;
			}
			case "record_path": {
				const s = this.synced.get(a.nodeId);
				if (s === undefined || !this.local.has(a.path) || this.remotePath(a.nodeId) !== a.path) throw new Error(`record_path ${a.nodeId}`);
				s.path = a.path;
				return;
			}
			case "forget":
				this.synced.delete(a.nodeId);
				return;
		}
	}

	#upload(a: Extract<Action, { kind: "upload" }>): void {
		const l = this.local.get(a.path);
		if (l === undefined || l.type !== "file" || l.contentHash !== a.contentHash) throw new Error(`"${a.path}" changed before upload`);
		if (a.nodeId === null) {
			const node = this.serverCreate(a.parentId ?? this.#remoteFolderAt(parentOf(a.path)), baseOf(a.path), "file", a.contentHash);
			this.#setSynced(node.nodeId, a.path);
			return;
		}
		const node = this.server.get(a.nodeId);
		const s = this.synced.get(a.nodeId);
		if (node === undefined || s === undefined) throw new Error(`upload of unknown ${a.nodeId}`);
		// Our bytes are safe on the server after any of the answers below; S then holds them (ADR 0029).
		const keptAsCopy = () => {
			s.contentHash = a.contentHash;
			s.fileId = l.fileId;
		};
		if (this.live(a.nodeId)) {
			if (node.versionId === a.ifMatch) {
				node.versionId = this.newId("v");
				node.contentHash = a.contentHash;
				this.#setSynced(a.nodeId, a.path);
			} else {
				this.#conflictedCopy(node, node.parentId ?? ROOT, a.contentHash);
				keptAsCopy();
			}
			return;
		}
		// Edit beats delete: back out of the trash, into the nearest live folder, unless its name is taken there.
		const folder = this.#nearestLive(node.parentId);
		if (node.versionId === a.ifMatch && !this.holder(folder, node.name)) {
			node.trashed = false;
			node.parentId = folder;
			node.versionId = this.newId("v");
			node.contentHash = a.contentHash;
			this.#setSynced(a.nodeId, a.path);
		} else {
			this.#conflictedCopy(node, folder, a.contentHash);
			keptAsCopy();
		}
	}
}
