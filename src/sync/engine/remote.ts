/// <reference types="node" />
/**
 * R, the server side of the three trees, kept from the change journal
 * (docs/api.md, "Sync: the change journal"). Only the journal writes R: an
 * action's answer never does, so an older snapshot can never overwrite a
 * newer one, and our own changes come back as echoes that the planner sees
 * as "both sides agree". Every page is written together with its cursor.
 */
import { DriveApiError, type DriveClient } from "../../client";
import type { Node } from "../../shared/schemas/nodes";
import type { ChangeEntry, ChangesPage } from "../../shared/schemas/sync";
import type { RemoteItem } from "../planner";
import type { SyncState } from "../state";

/** The synced root was trashed, deleted, or is no longer the caller's: nothing may be planned against it. */
export class RootGoneError extends Error {
	override readonly name = "RootGoneError";
}

/** A server node as R keeps it; the synced root's parent is cut, so that paths start there. */
export function remoteItemOf(node: Node, rootId: string): RemoteItem {
	return {
		nodeId: node.id,
		parentId: node.id === rootId ? null : node.parent_id,
		name: node.id === rootId ? "" : node.name,
		type: node.type,
		versionId: node.version_id,
		contentHash: node.content_hash,
		size: node.size ?? 0,
	};
}

/** Every page of a folder's live children. */
async function childrenOf(client: DriveClient, folderId: string): Promise<Node[]> {
	const out: Node[] = [];
	let cursor: string | undefined;
	do {
		const page = await client.json<{ items: Node[]; next_cursor: string | null }>(
			"GET",
			`/v1/nodes/${encodeURIComponent(folderId)}/children`,
			{
				query: { limit: 1000, cursor },
			},
		);
		out.push(...page.items);
		cursor = page.next_cursor ?? undefined;
	} while (cursor !== undefined);
	return out;
}

/** Lists the live subtree under `folderId` (not the folder itself), a few folders at a time. */
export async function listSubtree(client: DriveClient, folderId: string, concurrency = 4): Promise<Node[]> {
	const out: Node[] = [];
	const queue = [folderId];
	const worker = async (): Promise<void> => {
		for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
			const kids = await childrenOf(client, id);
			out.push(...kids);
			for (const kid of kids) if (kid.type === "folder") queue.push(kid.id);
		}
	};
	// Workers that find the queue empty stop; re-run until nothing is left, since a listing adds work.
	while (queue.length > 0) await Promise.all(Array.from({ length: concurrency }, worker));
	return out;
}

/** The ids reachable from the root through R (the root included). */
function reachable(remote: ReadonlyMap<string, RemoteItem>, rootId: string): Set<string> {
	const kids = new Map<string, string[]>();
	for (const r of remote.values()) {
		if (r.parentId === null) continue;
		const list = kids.get(r.parentId) ?? [];
		list.push(r.nodeId);
		kids.set(r.parentId, list);
	}
	const out = new Set<string>([rootId]);
	const stack = [rootId];
	while (stack.length > 0) {
		for (const kid of kids.get(stack.pop() as string) ?? []) {
			if (out.has(kid)) continue;
			out.add(kid);
			stack.push(kid);
		}
	}
	return out;
}

export interface PullResult {
	cursor: string;
	/** Journal entries applied. */
	entries: number;
	/** True when the cursor was reset and R listed again. */
	relisted: boolean;
}

/** Keeps R and the cursor in the state database up to date with the server. */
export class RemoteMirror {
	constructor(
		readonly client: DriveClient,
		readonly state: SyncState,
		readonly rootId: string,
	) {}

	/**
	 * Lists the whole synced subtree and takes the cursor it is valid from.
	 * The cursor is read first: changes made during the listing are then
	 * replayed from the journal, and replaying a change is harmless.
	 */
	async relist(): Promise<string> {
		const { cursor } = await this.client.json<{ cursor: string }>("GET", "/v1/changes/latest");
		const root = await this.#root();
		const nodes = await listSubtree(this.client, this.rootId);
		this.state.replaceRemote([remoteItemOf(root, this.rootId), ...nodes.map((n) => remoteItemOf(n, this.rootId))], cursor);
		return cursor;
	}

	async #root(): Promise<Node> {
		try {
			const root = await this.client.json<Node>("GET", `/v1/nodes/${encodeURIComponent(this.rootId)}`);
			if (root.trashed || root.type !== "folder") throw new RootGoneError("the synced folder is in the server's trash");
			return root;
		} catch (err) {
			if (err instanceof DriveApiError && err.status === 404) throw new RootGoneError("the synced folder no longer exists on the server");
			throw err;
		}
	}

	/** Pulls the journal up to its newest entry. */
	async pull(signal?: AbortSignal): Promise<PullResult> {
		let cursor = this.state.getMeta("cursor");
		if (cursor === null) return { cursor: await this.relist(), entries: 0, relisted: true };
		let entries = 0;
		for (;;) {
			let page: ChangesPage;
			try {
				page = await this.client.json<ChangesPage>("GET", "/v1/changes", { query: { cursor, limit: 1000 }, signal });
			} catch (err) {
				if (err instanceof DriveApiError && err.code === "CURSOR_RESET") return { cursor: await this.relist(), entries, relisted: true };
				throw err;
			}
			await this.#apply(page.entries, page.cursor);
			entries += page.entries.length;
			cursor = page.cursor;
			if (!page.has_more) return { cursor, entries, relisted: false };
		}
	}

	/**
	 * Applies one page. A folder that enters the synced tree (moved in from
	 * elsewhere, restored, a share's `moved_in`) brings its children, which
	 * have no journal entries of their own here: its subtree is listed before
	 * the page is written, and written in the same transaction, so that R
	 * never shows a full folder as empty.
	 */
	async #apply(entries: ChangeEntry[], cursor: string): Promise<void> {
		const before = this.state.remote();
		const wasReachable = reachable(before, this.rootId);
		const after = new Map(before);
		const removals = new Set<string>();
		const upserts = new Map<string, RemoteItem>();
		for (const entry of entries) {
			const node = entry.node;
			const gone = entry.kind === "trashed" || entry.kind === "deleted" || node.trashed;
			if (node.id === this.rootId && gone) throw new RootGoneError("the synced folder was moved to the server's trash or deleted");
			if (gone) {
				after.delete(node.id);
				upserts.delete(node.id);
				removals.add(node.id);
				continue;
			}
			const item = remoteItemOf(node, this.rootId);
			after.set(node.id, item);
			upserts.set(node.id, item);
			removals.delete(node.id);
		}
		const nowReachable = reachable(after, this.rootId);
		const entering = [...upserts.values()].filter((r) => r.type === "folder" && nowReachable.has(r.nodeId) && !wasReachable.has(r.nodeId));
		for (const folder of entering) {
			// A folder created here and now is empty but for what later entries add; anything else may arrive full.
			const created = entries.some((e) => e.node.id === folder.nodeId && e.kind === "created" && e.reason === undefined);
			if (created && !before.has(folder.nodeId)) continue;
			for (const node of await listSubtree(this.client, folder.nodeId)) {
				if (upserts.has(node.id) || removals.has(node.id)) continue;
				upserts.set(node.id, remoteItemOf(node, this.rootId));
			}
		}
		this.state.applyPage(upserts.values(), removals, cursor);
	}
}
