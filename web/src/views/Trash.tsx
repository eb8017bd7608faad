/** The trash: what was deleted, newest first; restore it, delete it forever, or empty the trash. */
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import * as api from "../api";
import type { Node } from "../api";
import { Confirm } from "../components/Confirm";
import { Icon } from "../components/Icon";
import { lastChanges, resets } from "../live";
import { describeError } from "../messages";
import { notify } from "../toasts";
import { formatBytes, formatTime } from "../format";

type Question = { kind: "one"; node: Node } | { kind: "all" };

export function Trash() {
	const items = useSignal<Node[] | null>(null);
	const error = useSignal<string | null>(null);
	const question = useSignal<Question | null>(null);

	async function load(): Promise<void> {
		try {
			let all: Node[] = [];
			let cursor: string | undefined;
			do {
				const page = await api.trashPage(cursor);
				all = all.concat(page.items);
				cursor = page.next_cursor ?? undefined;
			} while (cursor !== undefined);
			items.value = all;
			error.value = null;
		} catch (err) {
			error.value = describeError(err);
		}
	}

	useEffect(() => void load(), []);
	// Something was trashed, restored or deleted elsewhere: list again.
	useEffect(() => {
		if (lastChanges.value.some((e) => e.kind === "trashed" || e.kind === "restored" || e.kind === "deleted")) void load();
	}, [lastChanges.value, resets.value]);

	function without(id: string): void {
		items.value = (items.value ?? []).filter((n) => n.id !== id);
	}

	async function restore(node: Node): Promise<void> {
		try {
			const restored = await api.restore(node.id);
			without(node.id);
			notify(restored.name === node.name ? `Restored “${node.name}”.` : `Restored “${node.name}” as “${restored.name}”.`);
		} catch (err) {
			notify(describeError(err, { name: node.name }), "error");
		}
	}

	async function deleteForever(node: Node): Promise<void> {
		try {
			await api.deleteForever(node.id);
			without(node.id);
			notify(`Deleted “${node.name}” forever.`);
		} catch (err) {
			notify(describeError(err, { name: node.name }), "error");
		}
	}

	async function empty(): Promise<void> {
		try {
			await api.emptyTrash();
			items.value = [];
			notify("The trash is empty.");
		} catch (err) {
			notify(describeError(err), "error");
		}
	}

	const list = items.value;
	const asked = question.value;
	return (
		<section class="trash">
			<div class="files-head">
				<h1>Trash</h1>
				<div class="toolbar">
					<button type="button" class="danger" disabled={!list || list.length === 0} onClick={() => (question.value = { kind: "all" })}>
						Empty trash
					</button>
				</div>
			</div>
			{error.value !== null && <p role="alert">{error.value}</p>}
			{list === null && error.value === null && (
				<p class="loading" aria-busy="true">
					Loading…
				</p>
			)}
			{list?.length === 0 && <p class="empty muted">The trash is empty.</p>}
			{list && list.length > 0 && (
				<table class="table">
					<thead>
						<tr>
							<th scope="col">Name</th>
							<th scope="col" class="c-size">
								Size
							</th>
							<th scope="col" class="c-date">
								Deleted
							</th>
							<th scope="col">
								<span class="visually-hidden">Actions</span>
							</th>
						</tr>
					</thead>
					<tbody>
						{list.map((node) => (
							<tr key={node.id}>
								<th scope="row">
									<Icon kind={node.type} />
									<span class="name">{node.name}</span>
								</th>
								<td class="c-size">{node.type === "file" ? formatBytes(node.size) : "—"}</td>
								<td class="c-date">{formatTime(node.modified_at)}</td>
								<td class="row-actions">
									<button type="button" aria-label={`Restore ${node.name}`} onClick={() => void restore(node)}>
										Restore
									</button>
									<button
										type="button"
										class="danger"
										aria-label={`Delete ${node.name} forever`}
										onClick={() => (question.value = { kind: "one", node })}
									>
										Delete forever
									</button>
								</td>
							</tr>
						))}
					</tbody>
				</table>
			)}
			{asked?.kind === "one" && (
				<Confirm
					title="Delete forever?"
					text={`“${asked.node.name}” will be deleted forever. This can't be undone.`}
					confirmLabel="Delete forever"
					onConfirm={() => deleteForever(asked.node)}
					onClose={() => (question.value = null)}
				/>
			)}
			{asked?.kind === "all" && (
				<Confirm
					title="Empty the trash?"
					text="Everything in the trash will be deleted forever. This can't be undone."
					confirmLabel="Empty trash"
					onConfirm={empty}
					onClose={() => (question.value = null)}
				/>
			)}
		</section>
	);
}
