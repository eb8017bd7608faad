/**
 * A public link opened by anyone, signed in or not (docs/api.md, "Public
 * links"): the password form when the link has one, the file or the folder
 * listing (folders open in place), downloads, and an upload form for links
 * that take files.
 *
 * Downloads: a link without a password is a plain URL, so the browser
 * streams it to disk through `<a download>`. A password-protected link needs
 * `Authorization: Link <session>`, which an `<a>` cannot send and which must
 * never go in a URL; such a file is fetched with the header and saved from a
 * Blob, so it is held in memory, and files over {@link BLOB_LIMIT} are refused
 * with a sentence instead.
 */
import { useEffect, useState } from "preact/hooks";
import { Alert } from "../components/Async";
import { DriveApiError, DriveClient, type RequestOptions } from "../../../src/client";
import type { Node } from "../api";
import { saveUrl } from "../download";
import { formatBytes } from "../format";
import { describeError } from "../messages";

/** The largest file a password-protected link downloads through memory. */
export const BLOB_LIMIT = 250_000_000;
/** The API takes at most 100 MB per link upload request. */
const UPLOAD_LIMIT = 100_000_000;

interface LinkInfo {
	link: { access: "view" | "upload" | "view_upload"; expires_at: string | null; requires_password: boolean };
	root: Node | null;
}

const anonymous = new DriveClient({ baseUrl: location.origin, retries: 2 });

export function PublicLink({ token }: { token: string }) {
	const [session, setSession] = useState<string | null>(null);
	const [info, setInfo] = useState<LinkInfo | null>(null);
	const [state, setState] = useState<"loading" | "password" | "ready" | "gone">("loading");
	const [error, setError] = useState<string | null>(null);
	const base = `/v1/l/${encodeURIComponent(token)}`;

	const request = (method: string, path: string, options: RequestOptions = {}) =>
		anonymous.request(method, `${base}${path}`, {
			...options,
			headers: { ...options.headers, ...(session !== null ? { Authorization: `Link ${session}` } : {}) },
		});

	useEffect(() => {
		let live = true;
		request("GET", "")
			.then(async (res) => {
				const answer = (await res.json()) as LinkInfo;
				if (!live) return;
				setInfo(answer);
				setState(answer.link.requires_password && session === null ? "password" : "ready");
			})
			.catch((err: unknown) => {
				if (!live) return;
				if (err instanceof DriveApiError && err.code === "PASSWORD_REQUIRED") setState("password");
				else {
					setState("gone");
					setError(linkError(err));
				}
			});
		return () => {
			live = false;
		};
	}, [token, session]);

	return (
		<div class="public-link">
			<header class="topbar">
				<a class="brand" href="/">
					Drive
				</a>
			</header>
			<main id="main">
				{state === "loading" && (
					<p class="loading" aria-busy="true">
						Opening the link…
					</p>
				)}
				{state === "gone" && (
					<section>
						<h1>This link can't be opened</h1>
						<p>{error}</p>
					</section>
				)}
				{state === "password" && <PasswordForm base={base} onUnlocked={setSession} />}
				{state === "ready" && info !== null && <LinkContent info={info} base={base} session={session} request={request} />}
			</main>
		</div>
	);
}

function linkError(err: unknown): string {
	if (err instanceof DriveApiError && err.status === 404) return "This link doesn't exist or was turned off by its owner.";
	return describeError(err);
}

function PasswordForm({ base, onUnlocked }: { base: string; onUnlocked: (session: string) => void }) {
	const [password, setPassword] = useState("");
	const [error, setError] = useState<string | null>(null);
	const [busy, setBusy] = useState(false);
	return (
		<section class="signin">
			<h1>This link is protected</h1>
			<form
				onSubmit={async (event) => {
					event.preventDefault();
					setBusy(true);
					setError(null);
					try {
						const res = await anonymous.request("POST", `${base}/unlock`, { json: { password }, retries: 0 });
						onUnlocked(((await res.json()) as { link_session: string }).link_session);
					} catch (err) {
						setError(err instanceof DriveApiError && err.code === "PASSWORD_REQUIRED" ? "That password is not right." : linkError(err));
					} finally {
						setBusy(false);
					}
				}}
			>
				<label>
					Password
					<input type="password" required autoComplete="off" value={password} onInput={(e) => setPassword(e.currentTarget.value)} />
				</label>
				<Alert text={error} />
				<button type="submit" class="primary" disabled={busy}>
					Open
				</button>
			</form>
		</section>
	);
}

type Request = (method: string, path: string, options?: RequestOptions) => Promise<Response>;

function LinkContent({ info, base, session, request }: { info: LinkInfo; base: string; session: string | null; request: Request }) {
	const root = info.root;
	const expiry = info.link.expires_at !== null ? ` until ${new Date(info.link.expires_at).toLocaleString()}` : "";
	const [message, setMessage] = useState<string | null>(null);

	const download = async (node: Node) => {
		setMessage(null);
		const path = `/nodes/${encodeURIComponent(node.id)}/content`;
		if (session === null) {
			saveUrl(`${base}${path}`, node.name);
			return;
		}
		if ((node.size ?? 0) > BLOB_LIMIT) {
			setMessage(
				`“${node.name}” is too large to download from a password-protected link in the browser (the limit is ${formatBytes(BLOB_LIMIT)}). Ask the owner for a link without a password.`,
			);
			return;
		}
		try {
			const blob = await (await request("GET", path)).blob();
			const url = URL.createObjectURL(blob);
			saveUrl(url, node.name);
			// The download has its own copy once it started; a minute is ample.
			setTimeout(() => URL.revokeObjectURL(url), 60_000);
		} catch (err) {
			setMessage(linkError(err));
		}
	};

	return (
		<section>
			{root === null ? <h1>Send files</h1> : <h1>{root.name}</h1>}
			<p class="muted">Shared with a link{expiry}.</p>
			<Alert text={message} />
			{root !== null && root.type === "file" && (
				<p>
					{formatBytes(root.size)}{" "}
					<button type="button" class="primary" onClick={() => void download(root)}>
						Download
					</button>
				</p>
			)}
			{root !== null && root.type === "folder" && <Listing root={root} request={request} onDownload={download} />}
			{info.link.access !== "view" && <LinkUpload request={request} parentId={root?.id ?? null} />}
		</section>
	);
}

function Listing({ root, request, onDownload }: { root: Node; request: Request; onDownload: (node: Node) => Promise<void> }) {
	const [path, setPath] = useState<Node[]>([root]);
	const [items, setItems] = useState<Node[] | null>(null);
	const [cursor, setCursor] = useState<string | null>(null);
	const [error, setError] = useState<string | null>(null);
	const folder = path[path.length - 1] ?? root;
	const load = async (from?: string) => {
		try {
			const res = await request("GET", `/nodes/${encodeURIComponent(folder.id)}/children`, { query: { limit: 500, cursor: from } });
			const page = (await res.json()) as { items: Node[]; next_cursor: string | null };
			setItems((before) => (from !== undefined && before !== null ? [...before, ...page.items] : page.items));
			setCursor(page.next_cursor);
		} catch (err) {
			setError(linkError(err));
		}
	};
	useEffect(() => {
		setItems(null);
		void load();
	}, [folder.id]);
	return (
		<>
			<nav aria-label="Folder path" class="crumbs">
				{path.map((entry, index) =>
					index === path.length - 1 ? (
						<span key={entry.id} aria-current="page">
							{entry.name}
						</span>
					) : (
						<span key={entry.id}>
							<button type="button" class="link" onClick={() => setPath(path.slice(0, index + 1))}>
								{entry.name}
							</button>{" "}
							/{" "}
						</span>
					),
				)}
			</nav>
			<Alert text={error} />
			{items !== null && items.length === 0 && <p class="muted">This folder is empty.</p>}
			{items !== null && items.length > 0 && (
				<ul class="link-list" aria-label={`Contents of ${folder.name}`}>
					{items.map((node) => (
						<li key={node.id}>
							{node.type === "folder" ? (
								<button type="button" class="link" onClick={() => setPath([...path, node])}>
									📁 {node.name}
								</button>
							) : (
								<>
									<span>{node.name}</span>
									<span class="muted">{formatBytes(node.size)}</span>
									<button type="button" aria-label={`Download ${node.name}`} onClick={() => void onDownload(node)}>
										Download
									</button>
								</>
							)}
						</li>
					))}
				</ul>
			)}
			{cursor !== null && (
				<button type="button" class="link" onClick={() => void load(cursor)}>
					Show more
				</button>
			)}
		</>
	);
}

/** Files for a link that takes uploads: one request each (at most 100 MB), never overwriting (the server numbers taken names). */
function LinkUpload({ request, parentId }: { request: Request; parentId: string | null }) {
	const [status, setStatus] = useState<string | null>(null);
	return (
		<form class="inline-form" onSubmit={(event) => event.preventDefault()}>
			<label>
				Add files
				<input
					type="file"
					multiple
					onChange={async (event) => {
						const input = event.currentTarget;
						const files = [...(input.files ?? [])];
						input.value = "";
						let sent = 0;
						for (const file of files) {
							if (file.size > UPLOAD_LIMIT) {
								setStatus(`“${file.name}” is larger than ${formatBytes(UPLOAD_LIMIT)}, the most a link takes.`);
								continue;
							}
							setStatus(`Sending ${file.name}…`);
							try {
								await request("PUT", "/files", {
									query: { name: file.name, parent_id: parentId ?? undefined },
									body: file,
									retries: 0,
								});
								sent++;
							} catch (err) {
								setStatus(describeError(err, { name: file.name }));
								return;
							}
						}
						setStatus(sent === 1 ? "1 file sent." : `${sent} files sent.`);
					}}
				/>
			</label>
			{status !== null && <p role="status">{status}</p>}
		</form>
	);
}
