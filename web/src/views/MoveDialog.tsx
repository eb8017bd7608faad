/** Move files and folders: browse to a folder (from "My files" down), then "Move here". */
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import * as api from "../api";
import type { Node } from "../api";
import { Dialog } from "../components/Dialog";
import { DialogActions } from "../components/DialogActions";
import { Icon } from "../components/Icon";
import { describeError } from "../messages";
import { moveNode } from "../state/folder";

interface Place {
	id: string;
	name: string;
}

export function MoveDialog({ nodes, onClose }: { nodes: Node[]; onClose: () => void }) {
	const trail = useSignal<Place[]>([]);
	const folders = useSignal<Node[] | null>(null);
	const error = useSignal<string | null>(null);
	const busy = useSignal(false);
	const here = trail.value[trail.value.length - 1];
	const moving = new Set(nodes.map((n) => n.id));

	useEffect(() => {
		void api.root().then(
			(root) => (trail.value = [{ id: root.id, name: "My files" }]),
			(err: unknown) => (error.value = describeError(err)),
		);
	}, []);

	useEffect(() => {
		if (!here) return;
		const controller = new AbortController();
		folders.value = null;
		void (async () => {
			try {
				let found: Node[] = [];
				let cursor: string | undefined;
				do {
					const page = await api.children(here.id, cursor, 1000, controller.signal);
					found = found.concat(page.items.filter((item) => item.type === "folder" && !item.trashed));
					cursor = page.next_cursor ?? undefined;
				} while (cursor !== undefined);
				if (!controller.signal.aborted) folders.value = found;
			} catch (err) {
				if (!controller.signal.aborted) error.value = describeError(err);
			}
		})();
		return () => controller.abort();
	}, [here?.id]);

	const title = nodes.length === 1 ? `Move “${nodes[0]?.name ?? ""}”` : `Move ${nodes.length} items`;
	// Already there: nothing to do.
	const pointless = here === undefined || nodes.every((n) => n.parent_id === here.id);

	return (
		<Dialog title={title} onClose={onClose}>
			<div class="picker">
				<nav aria-label="Folder path" class="crumbs">
					<ol>
						{trail.value.map((place, i) => (
							<li key={place.id}>
								<button
									type="button"
									class="link"
									aria-current={i === trail.value.length - 1 ? "location" : undefined}
									onClick={() => (trail.value = trail.value.slice(0, i + 1))}
								>
									{place.name}
								</button>
							</li>
						))}
					</ol>
				</nav>
				<ul class="folders" aria-label="Folders" aria-busy={folders.value === null}>
					{folders.value?.length === 0 && <li class="muted">No folders here.</li>}
					{folders.value?.map((f) => (
						<li key={f.id}>
							<button
								type="button"
								class="folder-choice"
								disabled={moving.has(f.id)}
								onClick={() => (trail.value = [...trail.value, { id: f.id, name: f.name }])}
							>
								<Icon kind="folder" />
								{f.name}
							</button>
						</li>
					))}
				</ul>
				<DialogActions
					label="Move here"
					busy={busy.value || pointless}
					error={error.value}
					onClose={onClose}
					onAct={async () => {
						if (!here) return;
						busy.value = true;
						let all = true;
						for (const node of nodes) all = (await moveNode(node, here.id, here.name)) && all;
						busy.value = false;
						if (all) onClose();
					}}
				/>
			</div>
		</Dialog>
	);
}
