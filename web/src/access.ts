/**
 * What the signed-in person may do where: inside a folder someone shared
 * with them as a viewer, nothing but read (docs/api.md, "Sharing with
 * people"). Roles come from GET /v1/shared-with-me, keyed by the mount (the
 * node of one's own tree that stands for the share), so a folder is
 * read-only when it, or any folder above it, is a viewer's mount.
 */
import { signal } from "@preact/signals";
import { sharedWithMe, type IncomingShare } from "./api";

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
