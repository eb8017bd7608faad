/**
 * The shell: the header, the navigation, the page for the current route,
 * the open dialog, the uploads panel and the toasts. State lives in signals
 * (session.ts, router.ts, dialogs.ts, toasts.ts, upload/queue.ts), so this
 * file only decides what is on screen.
 */
import { useEffect } from "preact/hooks";
import { closeDialog, dialog } from "./dialogs";
import { AccountDialog } from "./views/AccountDialog";
import { hrefOf, navigate, onLinkClick, route, type Route } from "./router";
import { leaving, signOut, user } from "./session";
import { dismiss, toasts } from "./toasts";
import { liveState, startLive, stopLive } from "./live";
import { UploadPanel } from "./components/UploadPanel";
import { Conflicts } from "./views/Conflicts";
import { Files } from "./views/Files";
import { MoveDialog } from "./views/MoveDialog";
import { NewFolderDialog } from "./views/NewFolderDialog";
import { Preview } from "./views/Preview";
import { PublicLink } from "./views/PublicLink";
import { RenameDialog } from "./views/RenameDialog";
import { Shared } from "./views/Shared";
import { ShareDialog } from "./views/ShareDialog";
import { SignIn } from "./views/SignIn";
import { Trash } from "./views/Trash";
import { Versions } from "./views/Versions";

const NAV: { label: string; to: Route }[] = [
	{ label: "My files", to: { view: "files", folderId: null } },
	{ label: "Shared with me", to: { view: "shared" } },
	{ label: "Conflicts", to: { view: "conflicts" } },
	{ label: "Trash", to: { view: "trash" } },
];

const LIVE_TEXT: Record<(typeof liveState)["value"], string> = {
	connecting: "Connecting…",
	live: "Live",
	polling: "Live (polling)",
	offline: "Offline, reconnecting…",
};

export function App() {
	useEffect(() => {
		document.addEventListener("click", onLinkClick);
		return () => document.removeEventListener("click", onLinkClick);
	}, []);
	// Live updates follow the session: started once signed in, stopped as soon as a sign-out starts.
	const following = leaving.value ? undefined : user.value?.id;
	useEffect(() => (following === undefined ? undefined : startLive()), [following]);
	const current = route.value;
	// A public link is open to anyone: no session needed, no shell.
	if (current.view === "link") return <PublicLink token={current.token} />;
	if (user.value === undefined)
		return (
			<p class="loading" aria-busy="true">
				Loading…
			</p>
		);
	if (user.value === null)
		return (
			<>
				<SignIn />
				<Toasts />
			</>
		);
	return (
		<div class="shell">
			<a class="skip" href="#main">
				Skip to content
			</a>
			<header class="topbar">
				<a class="brand" href="/">
					Drive
				</a>
				<nav aria-label="Sections">
					<ul>
						{NAV.map((item) => (
							<li key={item.label}>
								<a href={hrefOf(item.to)} aria-current={current.view === item.to.view ? "page" : undefined}>
									{item.label}
								</a>
							</li>
						))}
					</ul>
				</nav>
				<div class="account">
					<span class={`live-state ${liveState.value}`} role="status" title={LIVE_TEXT[liveState.value]}>
						<span class="dot" aria-hidden="true" />
						<span class="live-text">{LIVE_TEXT[liveState.value]}</span>
					</span>
					<button type="button" class="email" title="Storage and account" onClick={() => (dialog.value = { kind: "account" })}>
						{user.value.email}
					</button>
					<button
						type="button"
						onClick={async () => {
							await stopLive();
							await signOut();
							navigate("/", true);
						}}
					>
						Sign out
					</button>
				</div>
			</header>
			<main id="main" tabIndex={-1}>
				<Page route={current} />
			</main>
			<DialogHost />
			<UploadPanel />
			<Toasts />
		</div>
	);
}

/** Short notices; also shown on the sign-in page, which a deleted account lands on. */
function Toasts() {
	return (
		<div class="toasts" role="status" aria-live="polite">
			{toasts.value.map((t) => (
				<div key={t.id} class={`toast ${t.tone}`} role={t.tone === "error" ? "alert" : undefined}>
					<span>{t.text}</span>
					<button type="button" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
						×
					</button>
				</div>
			))}
		</div>
	);
}

function Page({ route: current }: { route: Route }) {
	switch (current.view) {
		case "files":
			return <Files folderId={current.folderId} />;
		case "trash":
			return <Trash />;
		case "conflicts":
			return <Conflicts />;
		case "shared":
			return <Shared />;
		default:
			return (
				<section>
					<h1>Page not found</h1>
					<p>
						<a href="/">Go to My files</a>
					</p>
				</section>
			);
	}
}

function DialogHost() {
	const open = dialog.value;
	if (open === null) return null;
	switch (open.kind) {
		case "rename":
			return <RenameDialog node={open.node} onClose={closeDialog} />;
		case "move":
			return <MoveDialog nodes={open.nodes} onClose={closeDialog} />;
		case "new-folder":
			return <NewFolderDialog parentId={open.parentId} onClose={closeDialog} />;
		case "share":
			return <ShareDialog node={open.node} onClose={closeDialog} />;
		case "versions":
			return <Versions node={open.node} onClose={closeDialog} />;
		case "preview":
			return <Preview node={open.node} onClose={closeDialog} />;
		case "account":
			return <AccountDialog onClose={closeDialog} />;
	}
}
