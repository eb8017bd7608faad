/**
 * The open folder: its node, its breadcrumbs and every child, loaded in pages
 * of 1,000 and kept current by the person's own operations and by live
 * updates (live.ts). Sorting is a computed view of the children, so a patch
 * never re-fetches.
 */
import { computed, effect, signal, untracked } from "@preact/signals";
import * as api from "../api";
import type { Node } from "../api";
import type { ChangeEntry } from "../../../src/shared/schemas/sync";
import { lastChanges, resets } from "../live";
import { describeError } from "../messages";
import { notify } from "../toasts";

export type SortKey = "name" | "size" | "modified";
export interface Sort {
	key: SortKey;
	dir: "asc" | "desc";
}

export interface Crumb {
	id: string;
	name: string;
	/** The root: linked as "/" and named "My files". */
	root: boolean;
}

export interface OpenFolder {
	/** The folder's node; its id is what children and uploads use. */
	node: Node;
	/** From "My files" down to the folder itself. */
	crumbs: Crumb[];
	items: Node[];
	/** All pages are in. */
	complete: boolean;
	/** Why the folder cannot be shown (gone, no access), as a sentence. */
	error: string | null;
}

export const folder = signal<OpenFolder | null>(null);
export const loadError = signal<string | null>(null);
export const sort = signal<Sort>({ key: "name", dir: "asc" });

const collator = new Intl.Collator(undefined, { numeric: true, sensitivity: "base" });

function compare(a: Node, b: Node, { key, dir }: Sort): number {
	// Folders first, whatever the order, as in every file manager.
	if (a.type !== b.type) return a.type === "folder" ? -1 : 1;
	let order = 0;
	if (key === "size") order = (a.size ?? 0) - (b.size ?? 0);
	else if (key === "modified") order = a.modified_at < b.modified_at ? -1 : a.modified_at > b.modified_at ? 1 : 0;
	if (order === 0) order = collator.compare(a.name, b.name);
	return dir === "asc" ? order : -order;
}

export const sortedItems = computed(() => {
	const items = folder.value?.items ?? [];
	const by = sort.value;
	return [...items].sort((a, b) => compare(a, b, by));
});

export function toggleSort(key: SortKey): void {
	const current = sort.value;
	sort.value = current.key === key ? { key, dir: current.dir === "asc" ? "desc" : "asc" } : { key, dir: "asc" };
}

let loading: AbortController | null = null;
let openId: string | null | undefined;

/** Shows `folderId` (null: the root), replacing what was shown; children arrive page by page. */
export async function openFolder(folderId: string | null): Promise<void> {
	loading?.abort();
	const controller = new AbortController();
	loading = controller;
	openId = folderId;
	loadError.value = null;
	if (folder.value && folder.value.node.id !== folderId) folder.value = null;
	try {
		let node: Node;
		let crumbs: Crumb[];
		if (folderId === null) {
			node = await api.root();
			crumbs = [{ id: node.id, name: "My files", root: true }];
		} else {
			const found = await api.node(folderId);
			node = found;
			const chain = [...found.ancestors, { id: found.id, name: found.name }];
			crumbs = chain.map((a, i) => ({ id: a.id, name: i === 0 ? "My files" : a.name, root: i === 0 }));
		}
		if (controller.signal.aborted) return;
		let items: Node[] = [];
		let cursor: string | undefined;
		do {
			const page = await api.children(node.id, cursor, 1000, controller.signal);
			if (controller.signal.aborted) return;
			items = items.concat(page.items.filter((item) => !item.trashed));
			cursor = page.next_cursor ?? undefined;
			folder.value = { node, crumbs, items, complete: cursor === undefined, error: null };
		} while (cursor !== undefined);
	} catch (err) {
		if (controller.signal.aborted) return;
		folder.value = null;
		loadError.value = describeError(err);
	}
}

/** Loads the open folder again (after the change journal was reset). */
export function reloadFolder(): void {
	if (openId !== undefined) void openFolder(openId);
}

function update(change: (items: Node[], current: OpenFolder) => Node[] | null): void {
	const current = folder.value;
	if (!current) return;
	const items = change(current.items, current);
	if (items !== null) folder.value = { ...current, items };
}

/** Puts `node` where it belongs: in the open folder's list if it lives there, out of it otherwise. */
export function place(node: Node): void {
	const current = folder.value;
	if (!current) return;
	if (node.id === current.node.id) {
		const crumbs = current.crumbs.map((c) => (c.id === node.id && !c.root ? { ...c, name: node.name } : c));
		folder.value = { ...current, node, crumbs };
		return;
	}
	update((items) => {
		const index = items.findIndex((item) => item.id === node.id);
		const belongs = node.parent_id === current.node.id && !node.trashed;
		if (belongs) return index === -1 ? [...items, node] : items.map((item, i) => (i === index ? node : item));
		return index === -1 ? null : items.filter((_, i) => i !== index);
	});
}

export function remove(nodeId: string): void {
	update((items) => (items.some((item) => item.id === nodeId) ? items.filter((item) => item.id !== nodeId) : null));
}

// Live updates: every pulled journal entry patches the open folder. Only the
// change signals are tracked: the patch itself reads and writes `folder`.
effect(() => {
	const entries = lastChanges.value;
	untracked(() => {
		for (const entry of entries) patch(entry);
	});
});
effect(() => {
	if (resets.value > 0) untracked(reloadFolder);
});

function patch(entry: ChangeEntry): void {
	const gone = entry.kind === "deleted" || entry.node.trashed;
	if (gone && entry.node.id === folder.value?.node.id) {
		folder.value = null;
		loadError.value = entry.kind === "deleted" ? "This folder was deleted." : "This folder was moved to the trash.";
	} else if (entry.kind === "deleted") remove(entry.node.id);
	else place(entry.node);
}

/** Runs an operation; on failure says why in a toast and leaves the list as it was. */
async function attempt<T>(work: () => Promise<T>, name: string): Promise<T | null> {
	try {
		return await work();
	} catch (err) {
		notify(describeError(err, { name }), "error");
		return null;
	}
}

export async function trashNode(node: Node): Promise<boolean> {
	const done = await attempt(() => api.trash(node.id), node.name);
	if (done === null) return false;
	remove(node.id);
	notify(`Moved “${node.name}” to the trash.`);
	return true;
}

export async function moveNode(node: Node, parentId: string, parentName: string): Promise<boolean> {
	if (node.id === parentId || node.parent_id === parentId) return false;
	const moved = await attempt(() => api.move(node.id, parentId), node.name);
	if (moved === null) return false;
	place(moved);
	notify(`Moved “${node.name}” to “${parentName}”.`);
	return true;
}
