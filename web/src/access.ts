/**
 * What the signed-in person may do where: inside a folder someone shared
 * with them as a viewer, nothing but read (docs/api.md, "Sharing with
 * people"). Roles come from GET /v1/shared-with-me, keyed by the mount (the
 * node of one's own tree that stands for the share), so a folder is
 * read-only when it, or any folder above it, is a viewer's mount.
 */
import { effect, signal } from "@preact/signals";
import { sharedWithMe, type IncomingShare } from "./api";
import { lastChanges } from "./live";

/** Shares with me, null until loaded. */
export const incoming = signal<IncomingShare[] | null>(null);
let loading: Promise<void> | null = null;

/** (Re)loads the shares with me; the views that depend on them re-render. */
export function loadIncoming(): Promise<void> {
	loading ??= sharedWithMe()
		.then((page) => {
			incoming.value = page.items;
		})
		.finally(() => {
			loading = null;
		});
	return loading;
}

/**
 * Whether the person may change things in `folder` (upload, create, rename,
 * move, trash). True until the shares are known; the server refuses a
 * viewer's write anyway, so this only decides which controls to show.
 */
export function canEdit(folder: { id: string; ancestors?: readonly { id: string }[] }): boolean {
	const shares = incoming.value;
	if (shares === null) {
		void loadIncoming().catch(() => undefined);
		return true;
	}
	const path = new Set([folder.id, ...(folder.ancestors ?? []).map((a) => a.id)]);
	return !shares.some((s) => s.role === "viewer" && s.mount_id !== null && path.has(s.mount_id));
}

/** Whether a folder path (ids from the root down) runs through a mount: what is there is someone else's. */
export function insideShare(path: readonly string[]): boolean {
	return (incoming.value ?? []).some((share) => share.mount_id !== null && path.includes(share.mount_id));
}

// A share made, changed or ended reaches this person as a change of its mount: reload the roles then.
effect(() => {
	if (lastChanges.value.some((entry) => entry.node.mount !== undefined || entry.reason === "unshared"))
		void loadIncoming().catch(() => undefined);
});
