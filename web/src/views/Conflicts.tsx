/**
 * Conflicted copies: two devices changed the same file from the same version,
 * and the later one was kept beside it. For each, keep both, or keep one:
 * the original as it is, or the copy's content as the original's new version.
 */
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import * as api from "../api";
import type { ConflictPage, Node } from "../api";
import { lastChanges, resets } from "../live";
import { describeError } from "../messages";
import { hrefOf } from "../router";
import { notify } from "../toasts";
import { formatBytes, formatTime } from "../format";

type Item = ConflictPage["items"][number];

function Side({
	title,
	node,
	keepLabel,
	onKeep,
	busy,
}: {
	title: string;
	node: Node;
	keepLabel: string;
	onKeep: () => void;
	busy: boolean;
}) {
	return (
		<div class="side">
			<h3>{title}</h3>
			<p class="name">{node.name}</p>
			<p class="muted">
				{formatBytes(node.size)} · changed {formatTime(node.modified_at)}
			</p>
			<button type="button" aria-label={keepLabel} disabled={busy} onClick={onKeep}>
				Keep this one
			</button>
		</div>
	);
}

export function Conflicts() {
	const items = useSignal<Item[] | null>(null);
	const error = useSignal<string | null>(null);
	const busy = useSignal<string | null>(null);

	async function load(): Promise<void> {
		try {
			items.value = (await api.conflicts()).items;
			error.value = null;
		} catch (err) {
			error.value = describeError(err);
		}
	}

	useEffect(() => void load(), []);
	// A copy was made, renamed, trashed or resolved elsewhere: list again.
	useEffect(() => {
		const shown = new Set((items.peek() ?? []).flatMap((i) => [i.node.id, i.conflicts_with?.id]));
		if (lastChanges.value.some((e) => e.node.conflict_of !== null || shown.has(e.node.id))) void load();
	}, [lastChanges.value, resets.value]);

	async function resolve(item: Item, keep: "both" | "original" | "copy"): Promise<void> {
		busy.value = item.node.id;
		try {
			await api.resolveConflict(item.node.id, keep);
			items.value = (items.value ?? []).filter((i) => i.node.id !== item.node.id);
			const original = item.conflicts_with?.name ?? item.node.name;
			notify(
				keep === "both"
					? `Kept both: “${item.node.name}” is now an ordinary file.`
					: keep === "original"
						? `Kept “${original}”; the conflicted copy is in the trash.`
						: `“${original}” now has the conflicted copy's content; the copy is in the trash.`,
			);
		} catch (err) {
			notify(describeError(err, { name: item.node.name }), "error");
		} finally {
			busy.value = null;
		}
	}

	const list = items.value;
	return (
		<section class="conflicts">
			<h1>Conflicts</h1>
			{error.value !== null && <p role="alert">{error.value}</p>}
			{list === null && error.value === null && (
				<p class="loading" aria-busy="true">
					Loading…
				</p>
			)}
			{list?.length === 0 && <p class="empty muted">No conflicts. Everything is in sync.</p>}
			{list && list.length > 0 && (
				<ul class="conflict-list" aria-label="Conflicted copies">
					{list.map((item) => {
						const original = item.conflicts_with;
						const working = busy.value === item.node.id;
						return (
							<li key={item.node.id} class="conflict" aria-label={item.node.name}>
								<p>
									<strong>{original?.name ?? item.node.name}</strong> was changed in two places at once.{" "}
									{item.node.parent_id !== null && <a href={hrefOf({ view: "files", folderId: item.node.parent_id })}>Open folder</a>}
								</p>
								<div class="sides">
									{original ? (
										<Side
											title="Original"
											node={original}
											keepLabel={`Keep the original of ${original.name}`}
											busy={working}
											onKeep={() => void resolve(item, "original")}
										/>
									) : (
										<div class="side">
											<h3>Original</h3>
											<p class="muted">The original no longer exists.</p>
										</div>
									)}
									<Side
										title="Conflicted copy"
										node={item.node}
										keepLabel={`Keep the conflicted copy ${item.node.name}`}
										busy={working || original === null}
										onKeep={() => void resolve(item, "copy")}
									/>
								</div>
								<div class="actions">
									<button
										type="button"
										class="primary"
										aria-label={`Keep both: ${item.node.name}`}
										disabled={working}
										onClick={() => void resolve(item, "both")}
									>
										Keep both
									</button>
								</div>
							</li>
						);
					})}
				</ul>
			)}
		</section>
	);
}
