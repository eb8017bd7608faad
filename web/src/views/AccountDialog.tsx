/**
 * Storage used, split as GET /v1/me reports it (current files, version
 * history, trash), and deleting the account: the password is asked again,
 * and once the server accepts, every device is signed out, this one too.
 */
import { useState } from "preact/hooks";
import * as api from "../api";
import { Pending, useLoaded } from "../components/Async";
import { Dialog } from "../components/Dialog";
import { DialogActions } from "../components/DialogActions";
import { formatBytes } from "../format";
import { describeError } from "../messages";
import { navigate } from "../router";
import { signOut, user } from "../session";
import { stopLive } from "../live";
import { notify } from "../toasts";

export function AccountDialog({ onClose }: { onClose: () => void }) {
	const me = useLoaded(() => api.me(), "me");
	const [deleting, setDeleting] = useState(false);
	return (
		<Dialog title="Your account" onClose={onClose}>
			<p>{user.value?.email}</p>
			<h3>Storage</h3>
			{me.value === null ? <Pending state={me} /> : <UsageList usage={me.value.usage} />}
			<h3>Delete account</h3>
			{deleting ? (
				<DeleteAccountForm onClose={onClose} />
			) : (
				<>
					<p>Deletes every file, folder and version for good, ends your shares and signs out all your devices. This can't be undone.</p>
					<div class="actions">
						<button type="button" class="danger" onClick={() => setDeleting(true)}>
							Delete account…
						</button>
					</div>
				</>
			)}
		</Dialog>
	);
}

function UsageList({ usage }: { usage: api.Usage }) {
	return (
		<>
			<progress class="usage-bar" max={usage.quota_bytes} value={Math.min(usage.bytes_used, usage.quota_bytes)} aria-label="Storage used" />
			<dl class="usage">
				<dt>Files</dt>
				<dd>{formatBytes(usage.files_bytes)}</dd>
				<dt>Version history</dt>
				<dd>{formatBytes(usage.versions_bytes)}</dd>
				<dt>Trash</dt>
				<dd>{formatBytes(usage.trash_bytes)}</dd>
				<dt>Used</dt>
				<dd>
					{formatBytes(usage.bytes_used)} of {formatBytes(usage.quota_bytes)}
				</dd>
			</dl>
		</>
	);
}

function DeleteAccountForm({ onClose }: { onClose: () => void }) {
	const [password, setPassword] = useState("");
	const [busy, setBusy] = useState(false);
	const [error, setError] = useState<string | null>(null);
	return (
		<form
			onSubmit={async (event) => {
				event.preventDefault();
				setBusy(true);
				setError(null);
				try {
					await api.deleteAccount(password);
				} catch (err) {
					setError(describeError(err));
					setBusy(false);
					return;
				}
				onClose();
				await stopLive();
				await signOut();
				navigate("/", true);
				notify("Your account is being deleted. You have been signed out.");
			}}
		>
			<label>
				Type your password to confirm
				<input
					type="password"
					autocomplete="current-password"
					required
					value={password}
					aria-describedby={error === null ? undefined : "dialog-error"}
					onInput={(event) => setPassword(event.currentTarget.value)}
				/>
			</label>
			<DialogActions label="Delete my account" busy={busy} error={error} onClose={onClose} danger />
		</form>
	);
}
