/**
 * "Shared with me" (GET /v1/shared-with-me: open a share's mount, or add it
 * back to My files once removed) and what I share (GET /v1/shares), each
 * with its people and a way to manage it.
 */
import { useEffect, useState } from "preact/hooks";
import { incoming, loadIncoming } from "../access";
import { Alert, Head } from "../components/Async";
import { mountShare, shares, type Share } from "../api";
import { dialog } from "../dialogs";
import { describeError } from "../messages";
import { hrefOf, navigate } from "../router";
import { notify } from "../toasts";

export function Shared() {
	const [mine, setMine] = useState<Share[] | null>(null);
	const [error, setError] = useState<string | null>(null);
	useEffect(() => {
		loadIncoming().catch((err: unknown) => setError(describeError(err)));
		shares().then(
			(page) => setMine(page.items),
			(err: unknown) => setError(describeError(err)),
		);
	}, []);
	const withMe = incoming.value;
	return (
		<section class="shared">
			<h1>Shared with me</h1>
			<Alert text={error} />
			{withMe === null && <p class="muted">Loading…</p>}
			{withMe !== null && withMe.length === 0 && <p class="muted">Nothing is shared with you yet.</p>}
			{withMe !== null && withMe.length > 0 && (
				<table class="share-table">
					<Head columns={["Name", "Owner", "Your role"]} />
					<tbody>
						{withMe.map((item) => (
							<tr key={item.share_id}>
								<th scope="row">
									{item.mount_id !== null ? (
										<a href={hrefOf({ view: "files", folderId: item.mount_id })}>{item.name}</a>
									) : (
										<>
											{item.name}{" "}
											<button
												type="button"
												class="link"
												onClick={async () => {
													try {
														const mount = await mountShare(item.share_id);
														await loadIncoming();
														navigate({ view: "files", folderId: mount.id });
													} catch (err) {
														notify(describeError(err, { name: item.name }), "error");
													}
												}}
											>
												Add to My files
											</button>
										</>
									)}
								</th>
								<td>{item.owner.email}</td>
								<td>{item.role === "editor" ? "Editor" : "Viewer"}</td>
							</tr>
						))}
					</tbody>
				</table>
			)}
			<h2>Shared by you</h2>
			{mine === null && error === null && <p class="muted">Loading…</p>}
			{mine !== null && mine.length === 0 && <p class="muted">You are not sharing anything.</p>}
			{mine !== null && mine.length > 0 && (
				<table class="share-table">
					<Head columns={["Name", "People"]} actions />
					<tbody>
						{mine.map((item) => (
							<tr key={item.id}>
								<th scope="row">{item.node.name}</th>
								<td>{item.members.map((m) => `${m.user.email} (${m.role})`).join(", ")}</td>
								<td>
									<button
										type="button"
										aria-label={`Manage sharing of ${item.node.name}`}
										onClick={() => (dialog.value = { kind: "share", node: item.node })}
									>
										Manage
									</button>
								</td>
							</tr>
						))}
					</tbody>
				</table>
			)}
		</section>
	);
}
