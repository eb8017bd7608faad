/**
 * A file's version history (docs/api.md, "Version history"): newest first,
 * with who committed each, its size, note and pin; download any version,
 * restore one as the new head (nothing is lost: the old head stays in the
 * list), pin or unpin one so retention keeps it.
 */
import { useEffect, useState } from "preact/hooks";
import { insideShare } from "../access";
import { restoreVersion, updateVersion, versions, type Node, type Version } from "../api";
import { Alert, Head } from "../components/Async";
import { Dialog } from "../components/Dialog";
import { downloadNode } from "../download";
import { formatBytes, formatTime } from "../format";
import { describeError } from "../messages";
import { user } from "../session";
import { folder } from "../state/folder";
import { notify } from "../toasts";

export function Versions({ node, onClose }: { node: Node; onClose: () => void }) {
	const [items, setItems] = useState<Version[] | null>(null);
	const [cursor, setCursor] = useState<string | null>(null);
	const [error, setError] = useState<string | null>(null);
	const [busy, setBusy] = useState(false);
	// The dialog opens from the folder that lists the file.
	const ownersFile = !insideShare((folder.value?.crumbs ?? []).map((crumb) => crumb.id));

	const load = async (more = false) => {
		try {
			const page = await versions(node.id, more ? (cursor ?? undefined) : undefined);
			setItems((before) => (more && before !== null ? [...before, ...page.items] : page.items));
			setCursor(page.next_cursor);
			setError(null);
		} catch (err) {
			setError(describeError(err, { name: node.name }));
		}
	};
	useEffect(() => {
		void load();
	}, [node.id]);

	const act = async (work: () => Promise<unknown>, done: string) => {
		setBusy(true);
		try {
			await work();
			notify(done);
			await load();
		} catch (err) {
			notify(describeError(err, { name: node.name }), "error");
		} finally {
			setBusy(false);
		}
	};

	return (
		<Dialog title={`Version history of ${node.name}`} onClose={onClose} wide>
			<div class="versions">
				<Alert text={error} />
				{items === null && error === null && (
					<p class="muted" aria-busy="true">
						Loading versions…
					</p>
				)}
				{items !== null && (
					<table>
						<caption class="muted">
							{items.length === 1 ? "1 version" : `${items.length}${cursor !== null ? "+" : ""} versions`}, newest first
						</caption>
						<Head columns={["Saved", "Size", "By", "Note"]} actions />
						<tbody>
							{items.map((version) => {
								const when = formatTime(version.created_at);
								return (
									<tr key={version.id} class={version.is_head ? "head" : undefined}>
										<th scope="row">
											<time dateTime={version.created_at}>{when}</time>
											{version.is_head && <span class="badge">Current</span>}
										</th>
										<td>{formatBytes(version.size)}</td>
										<td>{authorOf(version, ownersFile)}</td>
										<td>
											{version.keep_forever && <span class="badge">Pinned</span>} {version.label ?? ""}
										</td>
										<td class="row-actions">
											<button
												type="button"
												aria-label={`Download the version from ${when}`}
												onClick={() => void downloadNode(node, version.id)}
											>
												Download
											</button>
											{!version.is_head && (
												<button
													type="button"
													disabled={busy}
													aria-label={`Restore the version from ${when}`}
													onClick={() => void act(() => restoreVersion(node.id, version.id), `Restored the version from ${when}.`)}
												>
													Restore
												</button>
											)}
											<button
												type="button"
												disabled={busy}
												aria-pressed={version.keep_forever}
												aria-label={`${version.keep_forever ? "Unpin" : "Pin"} the version from ${when}`}
												onClick={() =>
													void act(
														() => updateVersion(node.id, version.id, { keep_forever: !version.keep_forever }),
														version.keep_forever ? "Unpinned: this version may expire." : "Pinned: this version is kept forever.",
													)
												}
											>
												{version.keep_forever ? "Unpin" : "Pin"}
											</button>
										</td>
									</tr>
								);
							})}
						</tbody>
					</table>
				)}
				{cursor !== null && (
					<button type="button" class="link" onClick={() => void load(true)}>
						Show older versions
					</button>
				)}
			</div>
		</Dialog>
	);
}

/** `author_id` null is the file's owner (docs/api.md, "Version history"): that is the person here unless the file is in a share of someone else's. */
function authorOf(version: Version, ownersFile: boolean): string {
	if (version.author_id !== null && version.author_id === user.value?.id) return "You";
	if (version.author_id === null) return ownersFile ? "You" : "Owner";
	return "A member";
}
