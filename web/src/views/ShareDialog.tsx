/**
 * Sharing a file or folder (docs/api.md, "Sharing with people" and "Public
 * links"): people by email as viewer or editor, their roles, removing them;
 * public links with access, an optional expiry and password, copied once
 * (the API shows a link's token only when it is created), listed and revoked.
 * A member sees who has access and may leave; only the owner manages.
 */
import type { JSX } from "preact";
import { Alert } from "../components/Async";
import { useEffect, useState } from "preact/hooks";
import {
	addMembers,
	createLink,
	createShare,
	linksOf,
	removeMember,
	revokeLink,
	setRole,
	share as getShare,
	shareOf,
	unshare,
	type Link,
	type LinkAccess,
	type Node,
	type Share,
	type ShareRole,
} from "../api";
import { Dialog } from "../components/Dialog";
import { formatTime } from "../format";
import { describeError } from "../messages";
import { notify } from "../toasts";

const ACCESS_TEXT: Record<LinkAccess, string> = {
	view: "Anyone with the link can view",
	upload: "Anyone with the link can upload (but not see the files)",
	view_upload: "Anyone with the link can view and upload",
};

export function ShareDialog({ node, onClose }: { node: Node; onClose: () => void }) {
	return (
		<Dialog title={`Share ${node.name}`} onClose={onClose} wide>
			<div class="share">
				{node.mount !== undefined ? <MemberView shareId={node.mount.share_id} onClose={onClose} /> : <OwnerView node={node} />}
			</div>
		</Dialog>
	);
}

function OwnerView({ node }: { node: Node }) {
	return (
		<>
			<People node={node} />
			<Links node={node} />
		</>
	);
}

function People({ node }: { node: Node }) {
	const [current, setCurrent] = useState<Share | null | undefined>(undefined);
	const [email, setEmail] = useState("");
	const [role, setNewRole] = useState<ShareRole>("viewer");
	const [error, setError] = useState<string | null>(null);
	const [busy, setBusy] = useState(false);
	useEffect(() => {
		shareOf(node.id).then(setCurrent, (err: unknown) => {
			setCurrent(null);
			setError(describeError(err, { name: node.name }));
		});
	}, [node.id]);

	const run = async (work: () => Promise<Share | null>) => {
		setBusy(true);
		setError(null);
		try {
			setCurrent(await work());
			return true;
		} catch (err) {
			setError(describeError(err, { name: node.name }));
			return false;
		} finally {
			setBusy(false);
		}
	};

	return (
		<section aria-labelledby="share-people">
			<h3 id="share-people">People with access</h3>
			<form
				class="inline-form"
				onSubmit={async (event) => {
					event.preventDefault();
					const members = [{ email: email.trim(), role }];
					const ok = await run(() => (current ? addMembers(current.id, members) : createShare(node.id, members)));
					if (ok) {
						notify(`Shared with ${email.trim()}.`);
						setEmail("");
					}
				}}
			>
				<label>
					Email address
					<input type="email" required autoComplete="off" value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
				</label>
				<label>
					Role
					<select aria-label="Role" value={role} onChange={(e) => setNewRole(e.currentTarget.value as ShareRole)}>
						<option value="viewer">Viewer</option>
						<option value="editor">Editor</option>
					</select>
				</label>
				{/* Not before the share is known: a first share made while it loads would be overwritten by the late "not shared" answer. */}
				<button type="submit" class="primary" disabled={busy || current === undefined}>
					Share
				</button>
			</form>
			<Alert text={error} />
			{current === undefined && <p class="muted">Loading…</p>}
			{current === null && <p class="muted">Only you can see this.</p>}
			{current && (
				<>
					<Members
						share={current}
						role={(member) => (
							<>
								<select
									aria-label={`Role of ${member.user.email}`}
									value={member.role}
									disabled={busy}
									onChange={(e) => void run(() => setRole(current.id, member.user.id, e.currentTarget.value as ShareRole))}
								>
									<option value="viewer">Viewer</option>
									<option value="editor">Editor</option>
								</select>
								<button
									type="button"
									class="icon"
									disabled={busy}
									aria-label={`Remove ${member.user.email}`}
									onClick={() =>
										void run(async () => {
											await removeMember(current.id, member.user.id);
											return getShare(current.id);
										})
									}
								>
									×
								</button>
							</>
						)}
					/>
					<button
						type="button"
						class="danger"
						disabled={busy}
						onClick={() =>
							void run(async () => {
								await unshare(current.id);
								return null;
							})
						}
					>
						Stop sharing
					</button>
				</>
			)}
		</section>
	);
}

function Links({ node }: { node: Node }) {
	const [links, setLinks] = useState<Link[] | null>(null);
	const [access, setAccess] = useState<LinkAccess>("view");
	const [expires, setExpires] = useState("");
	const [password, setPassword] = useState("");
	const [created, setCreated] = useState<string | null>(null);
	const [error, setError] = useState<string | null>(null);
	const [busy, setBusy] = useState(false);
	const load = () =>
		linksOf(node.id).then(
			(page) => setLinks(page.items),
			(err: unknown) => setError(describeError(err, { name: node.name })),
		);
	useEffect(() => {
		void load();
	}, [node.id]);

	return (
		<section aria-labelledby="share-links">
			<h3 id="share-links">Public links</h3>
			<form
				class="link-form"
				onSubmit={async (event) => {
					event.preventDefault();
					setBusy(true);
					setError(null);
					try {
						const body: Parameters<typeof createLink>[0] = { node_id: node.id, access };
						if (expires !== "") body.expires_at = new Date(expires).toISOString();
						if (password !== "") body.password = password;
						const link = await createLink(body);
						// The page for people, not the API's URL: /s/<token> opens the app's link view.
						setCreated(`${location.origin}/s/${link.token}`);
						setPassword("");
						await load();
					} catch (err) {
						setError(describeError(err, { name: node.name }));
					} finally {
						setBusy(false);
					}
				}}
			>
				<label>
					Link access
					<select aria-label="Link access" value={access} onChange={(e) => setAccess(e.currentTarget.value as LinkAccess)}>
						<option value="view">View</option>
						{node.type === "folder" && <option value="upload">Upload only</option>}
						{node.type === "folder" && <option value="view_upload">View and upload</option>}
					</select>
				</label>
				<label>
					Expires (optional)
					<input type="datetime-local" value={expires} onInput={(e) => setExpires(e.currentTarget.value)} />
				</label>
				<label>
					Link password (optional)
					<input type="password" autoComplete="new-password" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
				</label>
				<button type="submit" disabled={busy}>
					Create link
				</button>
			</form>
			<Alert text={error} />
			{created !== null && (
				<div class="new-link">
					<label>
						New link (shown once: copy it now)
						<input type="text" readOnly value={created} onFocus={(e) => e.currentTarget.select()} />
					</label>
					<button
						type="button"
						onClick={() =>
							navigator.clipboard.writeText(created).then(
								() => notify("Link copied."),
								() => notify("Copying was refused: select the link and copy it.", "error"),
							)
						}
					>
						Copy link
					</button>
				</div>
			)}
			{links !== null && links.length > 0 && (
				<ul class="links" aria-label="Links">
					{links.map((link) => (
						<li key={link.id}>
							<span>
								{ACCESS_TEXT[link.access]}
								<span class="muted">
									{" "}
									· created {formatTime(link.created_at)}
									{link.expires_at !== null && ` · expires ${formatTime(link.expires_at)}`}
									{link.has_password && " · password"}
									{` · ${link.download_count} ${link.download_count === 1 ? "download" : "downloads"}`}
								</span>
							</span>
							<button
								type="button"
								class="danger"
								disabled={busy}
								aria-label={`Revoke the link created ${formatTime(link.created_at)}`}
								onClick={async () => {
									try {
										await revokeLink(link.id);
										notify("Link revoked: it no longer opens.");
										await load();
									} catch (err) {
										setError(describeError(err));
									}
								}}
							>
								Revoke
							</button>
						</li>
					))}
				</ul>
			)}
		</section>
	);
}

/** What a member sees: who shares it with whom; they may leave it. */
function MemberView({ shareId, onClose }: { shareId: string; onClose: () => void }) {
	const [current, setCurrent] = useState<Share | null>(null);
	const [error, setError] = useState<string | null>(null);
	useEffect(() => {
		getShare(shareId).then(setCurrent, (err: unknown) => setError(describeError(err)));
	}, [shareId]);
	if (error !== null) return <Alert text={error} />;
	if (current === null) return <p class="muted">Loading…</p>;
	return (
		<section aria-labelledby="share-people">
			<h3 id="share-people">People with access</h3>
			<p>
				{current.owner.email} shares this with you as {current.your_role === "editor" ? "an editor" : "a viewer"}. Only they can change who
				has access.
			</p>
			<Members share={current} role={(member) => <span class="muted">{member.role === "editor" ? "Editor" : "Viewer"}</span>} />
			<button
				type="button"
				class="danger"
				onClick={async () => {
					try {
						await removeMember(shareId, "me");
						notify("You left the share.");
						onClose();
					} catch (err) {
						setError(describeError(err));
					}
				}}
			>
				Leave
			</button>
		</section>
	);
}

type ShareMember = Share["members"][number];

/** The owner, then each member with `role` rendering their role (text, or a control for the owner). */
function Members({ share, role }: { share: Share; role: (member: ShareMember) => JSX.Element }) {
	return (
		<ul class="members" aria-label="Members">
			<li>
				<span>{share.owner.email}</span>
				<span class="muted">Owner</span>
			</li>
			{share.members.map((member) => (
				<li key={member.user.id}>
					<span>{member.user.email}</span>
					{role(member)}
				</li>
			))}
		</ul>
	);
}
