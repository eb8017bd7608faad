/// <reference types="node" />
/**
 * The authorization matrix of issue 13, black-box against the local stack:
 * every row of test/e2e/authz-matrix.json is one request by one actor on one
 * target, with the status (and error code) it must answer.
 *
 * - Users are signed up until owner, editor, viewer and stranger are on four
 *   different shards. The shard is read from the stack's directory database
 *   on disk (read-only): no route exposes it, by design.
 * - A denied row changes nothing: every user's `GET /v1/changes/latest`
 *   cursor and the owner's listing of the share are as before it. Denied
 *   rows run first, on the standing fixtures, once every member has been
 *   told of their making (a marker change each member's journal must show,
 *   long poll), so that a late delivery is never taken for a side effect.
 *   Journals only grow, so one check after the rows of a route and target
 *   covers each of them; a row marked `fails` is checked on its own.
 * - A stranger's 404 has the body of the same request on a random id
 *   (request_id aside), and no answer to someone without a grant names the
 *   owner's ids or address (links aside: their holders see the link's).
 * - Allowed rows run next, each on fresh targets made for it when it
 *   changes something, and last those that would take fixtures away.
 * - A route of the OpenAPI document with no row (and not listed in
 *   `not_applicable`) fails the run; so does a row naming no such route.
 */
import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { newId } from "../../src/shared/ids";
import { expectOk, PASSWORD, type ChangeEntry, type Node, type TestUser } from "../support/harness";
import { sha256Of, stackHarness, userShardOnDisk, wsDialer } from "../support/stack";

type Member = "owner" | "editor" | "viewer" | "stranger";
type Actor = Member | "anonymous" | "view_link" | "upload_link";

interface Row {
	method: string;
	path: string;
	target: string;
	actor: Actor;
	status: number;
	code?: string;
	/** Set where the product is wrong: the row states the right answer and is expected to fail until fixed. */
	fails?: string;
}

interface Matrix {
	actors: Record<Actor, string>;
	targets: Record<string, string>;
	not_applicable: { method: string; path: string; reason: string }[];
	rows: Row[];
}

const matrix = JSON.parse(readFileSync(new URL("./authz-matrix.json", import.meta.url), "utf8")) as Matrix;
const h = stackHarness();
const MEMBERS: Member[] = ["owner", "editor", "viewer", "stranger"];
const routeOf = (r: { method: string; path: string }) => `${r.method.toUpperCase()} ${r.path}`;
const HANG_GUARD_MS = 60_000;

/** What a row's request acts on; a driver takes the ids it needs. */
interface Target {
	node?: string;
	version?: string;
	parent?: string;
	share?: string;
	member?: string;
	upload?: string;
	/** The node is in the trash (DELETE then means: forever). */
	trashed?: boolean;
	link?: string;
	/** A link's token, for /v1/l/{token}. */
	token?: string;
	/** The link's password, for unlocking it. */
	password?: string;
	/** A webhook endpoint's id. */
	webhook?: string;
	/** A delivery in that endpoint's log. */
	delivery?: string;
}

/** A request as a driver builds it. */
interface Call {
	method?: string;
	path: string;
	headers?: Record<string, string>;
	body?: string | Uint8Array;
	json?: unknown;
	/** Replaces the actor's credentials (a fresh device for sign-out). */
	token?: string;
	/** The sync socket: the upgrade is made with the `ws` client. */
	socket?: boolean;
}

/** One file's content: small, one block, uploaded by the owner first so that sessions need no bytes. */
const BLOCK = new TextEncoder().encode("the authorization matrix block");
const BLOCK_HASH = sha256Of(BLOCK);

let users: Record<Member, TestUser>;
let shards: Record<Member, number>;
let n = 0;
const unique = (tag: string) => `${tag}-${++n}`;

interface ShareFixture {
	id: string;
	rootId: string;
	mounts: { editor: string; viewer: string };
}

/** The standing fixtures; allowed writes never touch them (they get fresh ones). */
let world: {
	share: ShareFixture;
	sharedFolder: string;
	sharedFile: { id: string; old: string };
	marker: string;
	privateFolder: string;
	privateFile: { id: string; old: string };
	privateTrashed: string;
	trashedInShare: string;
	conflictInShare: string;
	ownerUpload: string;
	ownerOpenUpload: string;
	ownerTus: string;
	editorUpload: string;
	editorTus: string;
	links: Record<"view" | "upload" | "locked" | "revoked", { id: string; token: string }>;
	webhook: { id: string; delivery: string };
};

const LINK_PASSWORD = "the matrix link password";

/** Shares made for rows since the last settle: their members must hear of everything before the next snapshot. */
let freshShares: ShareFixture[] = [];

// ---- fixtures -----------------------------------------------------------------------

/** Signs up users until each of the four is on a shard none of the others is on. */
async function usersOnFourShards(): Promise<{ users: Record<Member, TestUser>; shards: Record<Member, number> }> {
	const placed: TestUser[] = [];
	const shards = new Set<number>();
	for (let tries = 0; placed.length < 4; tries++) {
		if (tries > 100) throw new Error(`four users on different shards: only shards ${[...shards].join(", ")} after 100 signups`);
		const user = await h.signup(`Matrix ${placed.length}`);
		const shard = userShardOnDisk(inject("persistTo"), user.id);
		if (shard === undefined) throw new Error(`no directory row for ${user.id}`);
		if (shards.has(shard)) continue;
		shards.add(shard);
		placed.push(user);
	}
	const [owner, editor, viewer, stranger] = placed as [TestUser, TestUser, TestUser, TestUser];
	const [a, b, c, d] = [...shards] as [number, number, number, number];
	return { users: { owner, editor, viewer, stranger }, shards: { owner: a, editor: b, viewer: c, stranger: d } };
}

/** A file with two versions; `old` is the first. */
async function twoVersions(parentId: string, name: string): Promise<{ id: string; old: string }> {
	const first = await h.upload(users.owner, parentId, name, `first ${name}`);
	await h.upload(users.owner, parentId, name, `second ${name}`, { status: 200 });
	return { id: first.node.id, old: first.version.id };
}

async function trashedFile(parentId: string): Promise<string> {
	const made = await h.upload(users.owner, parentId, unique("trashed"), "to the trash");
	expectOk(await h.trash(users.owner, made.node.id), 200);
	return made.node.id;
}

/** A conflicted copy in `parentId`: a commit on a stale base. */
async function conflictIn(parentId: string): Promise<string> {
	const name = unique("edited");
	const first = await h.upload(users.owner, parentId, name, "base");
	await h.upload(users.owner, parentId, name, "theirs", { status: 200 });
	const copy = await h.upload(users.owner, parentId, name, "mine", { ifMatch: first.version.id });
	if (!copy.conflict) throw new Error(`no conflicted copy: ${JSON.stringify(copy)}`);
	return copy.node.id;
}

async function uploadSession(parentId: string, more: boolean, by: TestUser = users.owner): Promise<string> {
	const blocks = more ? [] : [{ hash: BLOCK_HASH, size: BLOCK.length }];
	const body = { parent_id: parentId, name: unique("session"), size: BLOCK.length, blocks, more_blocks: more };
	const id = expectOk(await h.createUpload(by, body), 201).upload_id;
	// The block is sent, so that the session can be committed (an editor's dedup counts only their own blocks).
	if (!more)
		expect((await h.request(`/v1/uploads/${id}/blocks/${BLOCK_HASH}`, { method: "PUT", token: by.token, body: BLOCK })).status).toBe(204);
	return id;
}

async function tusUpload(parentId: string, by: TestUser = users.owner): Promise<string> {
	const res = await h.tusCreate(by, unique("tus"), BLOCK.length, { parentId });
	if (res.status !== 201) throw new Error(`POST /v1/tus: ${res.status} ${await res.text()}`);
	return new URL(res.headers.get("Location") ?? "").pathname.split("/").at(-1) ?? "";
}

/** Pulls `user`'s journal from `cursor` until an entry satisfies `match`, waiting by long poll; the cursor after it. */
async function journalUntil(user: TestUser, cursor: string, match: (e: ChangeEntry) => boolean, what: string): Promise<string> {
	const guard = Date.now() + HANG_GUARD_MS;
	for (;;) {
		const pulled = await h.pullAll(user, cursor);
		cursor = pulled.cursor;
		if (pulled.entries.some(match)) return cursor;
		if (Date.now() > guard) throw new Error(`${what}: not in the journal after ${HANG_GUARD_MS} ms (hang guard)`);
		expectOk(await h.longpoll(user, cursor, 10), 200);
	}
}

/** A folder of the owner's root shared with the editor and the viewer, once both have it mounted. */
async function newShare(name: string): Promise<ShareFixture> {
	const root = await h.mkdir(users.owner, users.owner.rootId, name);
	const body = {
		node_id: root.id,
		members: [
			{ email: users.editor.email, role: "editor" },
			{ email: users.viewer.email, role: "viewer" },
		],
	};
	const share = expectOk(await h.call<{ id: string }>("/v1/shares", { method: "POST", token: users.owner.token, json: body }), 201);
	const mountOf = async (member: TestUser): Promise<string> => {
		const guard = Date.now() + HANG_GUARD_MS;
		let cursor = await h.latest(member);
		for (;;) {
			const page = expectOk(
				await h.call<{ items: { share_id: string; mount_id: string | null }[] }>("/v1/shared-with-me?limit=1000", { token: member.token }),
				200,
			);
			const mount = page.items.find((i) => i.share_id === share.id)?.mount_id;
			if (mount) return mount;
			if (Date.now() > guard) throw new Error(`${member.email} never saw share ${share.id} (hang guard)`);
			const waited = expectOk(await h.longpoll(member, cursor, 10), 200);
			if (waited.changes) cursor = await h.latest(member);
		}
	};
	const [editor, viewer] = await Promise.all([mountOf(users.editor), mountOf(users.viewer)]);
	const made = { id: share.id, rootId: root.id, mounts: { editor, viewer } };
	freshShares.push(made);
	return made;
}

// ---- settling and snapshots ------------------------------------------------------------

interface Snapshot {
	cursors: Record<Member, string>;
	listing: string;
}

async function snapshot(): Promise<Snapshot> {
	const [owner, editor, viewer, stranger, listing] = await Promise.all([
		...MEMBERS.map((m) => h.latest(users[m])),
		h.listAll(users.owner, world.share.rootId),
	]);
	const shown = (listing as Node[]).map((c) => [c.id, c.name, c.parent_id, c.modified_at ?? null]);
	return { cursors: { owner, editor, viewer, stranger } as Record<Member, string>, listing: JSON.stringify(shown) };
}

let before: Snapshot;

/**
 * Waits until the editor and the viewer have been told of every change made
 * so far, then takes a new snapshot. Each share delivers to a member in
 * order, so a marker change in a share, once in the member's journal, means
 * everything of that share before it is there too.
 */
async function settle(): Promise<void> {
	const shares = [world.share, ...freshShares];
	freshShares = [];
	for (const share of shares) {
		const found = await h.call<{ members: { user: { id: string } }[] }>(`/v1/shares/${share.id}`, { token: users.owner.token });
		const inShare = found.status === 200 ? new Set(found.body.members.map((m) => m.user.id)) : new Set<string>();
		const marker = share === world.share ? world.marker : null;
		const name = unique("marker");
		// A share whose folder went to the trash takes no marker: its members hear of the trash instead.
		let marked = false;
		if (found.status === 200) {
			if (marker) expectOk(await h.patchNode(users.owner, marker, { name }), 200);
			else marked = (await h.putContent(users.owner, share.rootId, name, "marker")).status === 201;
			marked ||= marker !== null;
		}
		await Promise.all(
			(["editor", "viewer"] as const).map(async (m) => {
				const member = users[m];
				const mounted = await h.call<{ items: { share_id: string; mount_id: string | null }[] }>("/v1/shared-with-me?limit=1000", {
					token: member.token,
				});
				const mountId = expectOk(mounted, 200).items.find((i) => i.share_id === share.id)?.mount_id;
				const from = before.cursors[m];
				if (inShare.has(member.id) && mountId && marked)
					await journalUntil(member, from, (e) => e.node.name === name, `${m} hears of ${name}`);
				else if (inShare.has(member.id) && mountId)
					await journalUntil(member, from, (e) => e.node.id === mountId, `${m} hears of share ${share.id}'s folder`);
				else if (!inShare.has(member.id))
					// Removed, left or unshared: the mount goes with a `deleted` entry.
					await journalUntil(
						member,
						from,
						(e) => e.kind === "deleted" && e.node.id === share.mounts[m],
						`${m} hears that share ${share.id} is gone`,
					);
			}),
		);
	}
	before = await snapshot();
}

// ---- actors and targets ------------------------------------------------------------------

function credentials(actor: Actor): string | null {
	if (actor === "anonymous") return null;
	if (actor === "view_link") return world.links.view.token;
	if (actor === "upload_link") return world.links.upload.token;
	return users[actor].token;
}

/** The token an actor puts in a /v1/l/{token} path: its own link's, or (for anyone else, who was given the URL) the view link's. */
function linkTokenFor(actor: Actor): string {
	return actor === "upload_link" ? world.links.upload.token : world.links.view.token;
}

async function newLink(nodeId: string, access: "view" | "upload", password?: string): Promise<{ id: string; token: string }> {
	const body = { node_id: nodeId, access, ...(password ? { password } : {}) };
	const made = expectOk(
		await h.call<{ id: string; token?: string }>("/v1/links", { method: "POST", token: users.owner.token, json: body }),
		201,
	);
	return { id: made.id, token: made.token ?? "" };
}

/**
 * A webhook endpoint where nothing listens: the stack allows loopback URLs, and
 * deliveries to it fail and retry in the background. Test events only, so that
 * the matrix's own changes send it nothing.
 */
const HOOK = { url: "http://127.0.0.1:9/hook", event_types: ["webhook.test"] };

/** An endpoint of the owner's with one delivery (its test event) in its log. */
async function newWebhook(): Promise<{ id: string; delivery: string }> {
	const made = expectOk(await h.call<{ id: string }>("/v1/webhooks", { method: "POST", token: users.owner.token, json: HOOK }), 201);
	const test = expectOk(await h.call<{ id: string }>(`/v1/webhooks/${made.id}/test`, { method: "POST", token: users.owner.token }), 202);
	return { id: made.id, delivery: test.id };
}

/** The caller's root, for a move out of the share (someone without a tree moves to the owner's). */
function rootOf(actor: Actor): string {
	return (MEMBERS as string[]).includes(actor) ? users[actor as Member].rootId : users.owner.rootId;
}

/** The mount an actor names: their own, or (for anyone without one) the editor's. */
function mountFor(share: ShareFixture, actor: Actor): string {
	return actor === "viewer" ? share.mounts.viewer : share.mounts.editor;
}

async function resolve(name: string, actor: Actor, fresh: boolean): Promise<Target> {
	const share =
		fresh && ["share_root", "mount", "share", "share_viewer", "share_me"].includes(name) ? await newShare(unique("shared")) : world.share;
	switch (name) {
		case "self":
			return {};
		case "random_id":
			return {
				node: newId("nod"),
				version: newId("ver"),
				share: newId("shr"),
				member: newId("usr"),
				upload: newId("upl"),
				link: newId("lnk"),
				webhook: newId("whk"),
				delivery: newId("msg"),
			};
		case "share_root":
			return { node: share.rootId };
		case "mount":
			return { node: mountFor(share, actor) };
		case "share":
			return { share: share.id };
		case "share_viewer":
			return { share: share.id, member: users.viewer.id };
		case "share_me":
			return { share: share.id, member: "me" };
		case "shared_folder":
			return { node: fresh ? (await h.mkdir(users.owner, world.share.rootId, unique("folder"))).id : world.sharedFolder };
		case "shared_file":
			return { node: fresh ? (await twoVersions(world.share.rootId, unique("file"))).id : world.sharedFile.id };
		case "old_version": {
			const file = fresh ? await twoVersions(world.share.rootId, unique("file")) : world.sharedFile;
			return { node: file.id, version: file.old };
		}
		case "move_within_share":
			return {
				node: fresh ? (await twoVersions(world.share.rootId, unique("file"))).id : world.sharedFile.id,
				parent: world.sharedFolder,
			};
		case "move_out_of_share":
			return { node: fresh ? (await twoVersions(world.share.rootId, unique("file"))).id : world.sharedFile.id, parent: rootOf(actor) };
		case "private_folder":
			return { node: fresh ? (await h.mkdir(users.owner, users.owner.rootId, unique("private"))).id : world.privateFolder };
		case "private_file":
			return { node: fresh ? (await twoVersions(world.privateFolder, unique("file"))).id : world.privateFile.id };
		case "private_old_version": {
			const file = fresh ? await twoVersions(world.privateFolder, unique("file")) : world.privateFile;
			return { node: file.id, version: file.old };
		}
		case "private_trashed":
			return { node: fresh ? await trashedFile(world.privateFolder) : world.privateTrashed, trashed: true };
		case "trashed_in_share":
			return { node: fresh ? await trashedFile(world.share.rootId) : world.trashedInShare, trashed: true };
		case "conflict_in_share":
			return { node: fresh ? await conflictIn(world.share.rootId) : world.conflictInShare };
		case "owner_upload":
			return { upload: fresh ? await uploadSession(world.privateFolder, false) : world.ownerUpload };
		case "owner_open_upload":
			return { upload: fresh ? await uploadSession(world.privateFolder, true) : world.ownerOpenUpload };
		case "link": {
			const link = fresh ? await newLink(world.share.rootId, "view") : world.links.view;
			return { link: link.id, token: linkTokenFor(actor) };
		}
		case "locked_link":
			return { token: world.links.locked.token, node: world.share.rootId, password: LINK_PASSWORD };
		case "random_token":
			return { token: randomToken() };
		case "revoked_link":
			return { token: world.links.revoked.token, node: world.share.rootId };
		case "editor_upload":
			return { upload: fresh ? await uploadSession(world.share.mounts.editor, false, users.editor) : world.editorUpload };
		case "editor_tus":
			return { upload: fresh ? await tusUpload(world.share.mounts.editor, users.editor) : world.editorTus };
		case "owner_tus":
			return { upload: fresh ? await tusUpload(world.privateFolder) : world.ownerTus };
		case "webhook": {
			const hook = fresh ? await newWebhook() : world.webhook;
			return { webhook: hook.id, delivery: hook.delivery };
		}
		default:
			throw new Error(`no target ${name} (authz-matrix.json lists the targets)`);
	}
}

// ---- one driver per route: the request a row sends ------------------------------------------------

const TUS = { "Tus-Resumable": "1.0.0" };
const need = (value: string | undefined, what: string): string => {
	if (value === undefined) throw new Error(`the target has no ${what}`);
	return value;
};

type Driver = (t: Target, actor: Actor, allowed: boolean) => Call | Promise<Call>;

const drivers: Record<string, Driver> = {
	"POST /v1/auth/logout": async (_t, actor, allowed) => {
		// A fresh device signs out, so the actor's own session goes on.
		if (!allowed || !(MEMBERS as string[]).includes(actor)) return { method: "POST", path: "/v1/auth/logout", json: {} };
		const device = await h.login(users[actor as Member], unique("device"));
		return { method: "POST", path: "/v1/auth/logout", json: {}, token: device.token };
	},
	"POST /v1/auth/web/logout": async (_t, actor) => {
		// A member signs out a fresh web session by its cookie, so the actor's own session goes on;
		// anyone else has no cookie, and signing out without one is harmless.
		if (!(MEMBERS as string[]).includes(actor)) return { method: "POST", path: "/v1/auth/web/logout" };
		const login = await h.request("/v1/auth/web/login", {
			method: "POST",
			json: { email: users[actor as Member].email, password: PASSWORD },
		});
		expect(login.status).toBe(200);
		// The stack is http://127.0.0.1: the loopback cookie.
		const cookie = login.headers.getSetCookie()[0]?.split(";")[0] ?? "";
		expect(cookie).toMatch(/^drive_rt=drt_/);
		return { method: "POST", path: "/v1/auth/web/logout", headers: { Cookie: cookie } };
	},
	"GET /v1/me": () => ({ path: "/v1/me" }),
	// A wrong password: the matrix checks who reaches the check, and deletes no fixture.
	"DELETE /v1/me": () => ({ method: "DELETE", path: "/v1/me", json: { password: "not the password" } }),
	"GET /v1/nodes/root": () => ({ path: "/v1/nodes/root" }),
	"GET /v1/nodes/{id}": (t) => ({ path: `/v1/nodes/${need(t.node, "node")}` }),
	"PATCH /v1/nodes/{id}": (t) => ({
		method: "PATCH",
		path: `/v1/nodes/${need(t.node, "node")}`,
		json: t.parent ? { parent_id: t.parent } : { name: unique("renamed") },
	}),
	"DELETE /v1/nodes/{id}": (t) => ({
		method: "DELETE",
		// A node in the trash can only be deleted forever.
		path: `/v1/nodes/${need(t.node, "node")}${t.trashed ? "?permanent=true" : ""}`,
	}),
	"GET /v1/nodes/{id}/children": (t) => ({ path: `/v1/nodes/${need(t.node, "node")}/children` }),
	"POST /v1/folders": (t) => ({ method: "POST", path: "/v1/folders", json: { parent_id: need(t.node, "node"), name: unique("folder") } }),
	"POST /v1/folders/batch": (t) => ({
		method: "POST",
		path: "/v1/folders/batch",
		json: { parent_id: need(t.node, "node"), names: [unique("batch"), unique("batch")] },
	}),
	"POST /v1/files/batch": async (t) => {
		const form = new FormData();
		const item = { parent_id: need(t.node, "node"), name: unique("batched"), size: BLOCK.byteLength, sha256: BLOCK_HASH };
		form.append("manifest", JSON.stringify({ items: [item] }));
		form.append("file", new Blob([BLOCK]), "file");
		const encoded = new Response(form);
		const headers = { "Content-Type": encoded.headers.get("Content-Type") ?? "" };
		return { method: "POST", path: "/v1/files/batch", headers, body: new Uint8Array(await encoded.arrayBuffer()) };
	},
	"DELETE /v1/trash": () => ({ method: "DELETE", path: "/v1/trash" }),
	"GET /v1/trash": () => ({ path: "/v1/trash" }),
	"POST /v1/nodes/{id}/restore": (t) => ({ method: "POST", path: `/v1/nodes/${need(t.node, "node")}/restore` }),
	"PUT /v1/files/content": (t) => ({
		method: "PUT",
		path: `/v1/files/content?${new URLSearchParams({ parent_id: need(t.node, "node"), name: unique("put") })}`,
		body: "put by the matrix",
	}),
	"PUT /v1/files/{id}/content": (t) => ({
		method: "PUT",
		path: `/v1/files/${need(t.node, "node")}/content`,
		body: "put by the matrix, by id",
	}),
	"GET /v1/files/{id}/content": (t) => ({
		path: `/v1/files/${need(t.node, "node")}/content${t.version ? `?version_id=${t.version}` : ""}`,
	}),
	"GET /v1/files/{id}/blocks": (t) => ({
		path: `/v1/files/${need(t.node, "node")}/blocks${t.version ? `?version_id=${t.version}` : ""}`,
	}),
	"GET /v1/files/{id}/blocks/{hash}": async (t) => {
		const query = t.version ? `?version_id=${t.version}` : "";
		const path = `/v1/files/${need(t.node, "node")}/blocks`;
		// A block the version holds, as its owner lists it; ids that name nothing get a hash that names nothing.
		const listed = await h.call<{ blocks: { hash: string }[] }>(`${path}${query}`, { token: users.owner.token });
		const hash = listed.status === 200 ? (listed.body.blocks[0]?.hash ?? BLOCK_HASH) : BLOCK_HASH;
		return { path: `${path}/${hash}${query}` };
	},
	"POST /v1/files/{id}/download-url": (t) => ({
		method: "POST",
		path: `/v1/files/${need(t.node, "node")}/download-url`,
		json: t.version ? { version_id: t.version } : {},
	}),
	"GET /v1/dl/{token}": async (t, actor) => {
		if (t.token !== undefined) return { path: `/v1/dl/${t.token}` };
		// Owner, editor and viewer ask for their own URL; anyone else was handed the owner's.
		const asker = actor === "editor" || actor === "viewer" ? users[actor] : users.owner;
		const made = expectOk(
			await h.call<{ url: string }>(`/v1/files/${need(t.node, "node")}/download-url`, { method: "POST", token: asker.token, json: {} }),
			200,
		);
		return { path: made.url };
	},
	"POST /v1/uploads": (t) => ({
		method: "POST",
		path: "/v1/uploads",
		json: {
			parent_id: need(t.node, "node"),
			name: unique("session"),
			size: BLOCK.length,
			blocks: [{ hash: BLOCK_HASH, size: BLOCK.length }],
		},
	}),
	"PUT /v1/uploads/{id}/blocks/{hash}": (t) => ({
		method: "PUT",
		path: `/v1/uploads/${need(t.upload, "upload")}/blocks/${BLOCK_HASH}`,
		body: BLOCK,
	}),
	"POST /v1/uploads/{id}/block-list": (t) => ({
		method: "POST",
		path: `/v1/uploads/${need(t.upload, "upload")}/block-list`,
		json: { offset: 0, blocks: [{ hash: BLOCK_HASH, size: BLOCK.length }], more_blocks: false },
	}),
	"PUT /v1/uploads/{id}/blocks": (t) => ({
		method: "PUT",
		path: `/v1/uploads/${need(t.upload, "upload")}/blocks`,
		headers: { "Drive-Blocks": BLOCK_HASH },
		body: BLOCK,
	}),
	"GET /v1/uploads/{id}": (t) => ({ path: `/v1/uploads/${need(t.upload, "upload")}` }),
	"DELETE /v1/uploads/{id}": (t) => ({ method: "DELETE", path: `/v1/uploads/${need(t.upload, "upload")}` }),
	"POST /v1/uploads/{id}/commit": (t) => ({ method: "POST", path: `/v1/uploads/${need(t.upload, "upload")}/commit`, json: {} }),
	"POST /v1/tus": (t) => ({
		method: "POST",
		path: "/v1/tus",
		headers: { ...TUS, "Upload-Length": String(BLOCK.length), "Upload-Metadata": h.tusMetadata(need(t.node, "node"), unique("tus")) },
	}),
	"HEAD /v1/tus/{id}": (t) => ({ method: "HEAD", path: `/v1/tus/${need(t.upload, "upload")}`, headers: TUS }),
	"PATCH /v1/tus/{id}": (t) => ({
		method: "PATCH",
		path: `/v1/tus/${need(t.upload, "upload")}`,
		headers: { ...TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream" },
		body: BLOCK,
	}),
	"DELETE /v1/tus/{id}": (t) => ({ method: "DELETE", path: `/v1/tus/${need(t.upload, "upload")}`, headers: TUS }),
	"GET /v1/changes": () => ({ path: "/v1/changes?limit=1" }),
	"GET /v1/changes/latest": () => ({ path: "/v1/changes/latest" }),
	"GET /v1/changes/longpoll": async (_t, actor) => {
		// From the start of the journal: answers at once for anyone with a change, and after a second for anyone without.
		const cursor = (MEMBERS as string[]).includes(actor) ? (await h.page(users[actor as Member], null, 1)).cursor : "0";
		return { path: `/v1/changes/longpoll?cursor=${encodeURIComponent(cursor)}&timeout=1` };
	},
	"POST /v1/sync/ticket": () => ({ method: "POST", path: "/v1/sync/ticket" }),
	"GET /v1/sync/ws": async (_t, actor) => {
		// The socket authenticates with a ticket (browsers cannot send Authorization); a link holder tries its token.
		if (actor === "anonymous") return { path: "/v1/sync/ws", socket: true };
		const ticket = (MEMBERS as string[]).includes(actor) ? (await h.ticket(users[actor as Member])).ticket : (credentials(actor) ?? "");
		return { path: `/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`, socket: true };
	},
	"GET /v1/conflicts": () => ({ path: "/v1/conflicts" }),
	"POST /v1/conflicts/{id}/resolve": (t) => ({ method: "POST", path: `/v1/conflicts/${need(t.node, "node")}/resolve` }),
	"GET /v1/files/{id}/versions": (t) => ({ path: `/v1/files/${need(t.node, "node")}/versions` }),
	"POST /v1/files/{id}/versions/{version_id}/restore": (t) => ({
		method: "POST",
		path: `/v1/files/${need(t.node, "node")}/versions/${need(t.version, "version")}/restore`,
	}),
	"POST /v1/shares": (t) => ({
		method: "POST",
		path: "/v1/shares",
		json: { node_id: need(t.node, "node"), members: [{ email: users.viewer.email, role: "viewer" }] },
	}),
	"GET /v1/shares": () => ({ path: `/v1/shares?node_id=${world.share.rootId}` }),
	"GET /v1/shares/{id}": (t) => ({ path: `/v1/shares/${need(t.share, "share")}` }),
	"DELETE /v1/shares/{id}": (t) => ({ method: "DELETE", path: `/v1/shares/${need(t.share, "share")}` }),
	"POST /v1/shares/{id}/members": (t) => ({
		method: "POST",
		path: `/v1/shares/${need(t.share, "share")}/members`,
		json: { members: [{ email: users.viewer.email, role: "editor" }] },
	}),
	"PATCH /v1/shares/{id}/members/{user_id}": (t) => ({
		method: "PATCH",
		path: `/v1/shares/${need(t.share, "share")}/members/${need(t.member, "member")}`,
		json: { role: "editor" },
	}),
	"DELETE /v1/shares/{id}/members/{user_id}": (t) => ({
		method: "DELETE",
		path: `/v1/shares/${need(t.share, "share")}/members/${need(t.member, "member")}`,
	}),
	"GET /v1/shared-with-me": () => ({ path: "/v1/shared-with-me" }),
	"GET /v1/activity": (t) => ({ path: `/v1/activity${t.node ? `?node_id=${t.node}` : ""}` }),
	"POST /v1/nodes/{id}/copy": (t, actor) => ({
		method: "POST",
		path: `/v1/nodes/${need(t.node, "node")}/copy`,
		json: { parent_id: rootOf(actor), name: unique("copy") },
	}),
	"PATCH /v1/files/{id}/versions/{version_id}": (t) => ({
		method: "PATCH",
		path: `/v1/files/${need(t.node, "node")}/versions/${need(t.version, "version")}`,
		json: { keep_forever: true, label: unique("label") },
	}),
	"DELETE /v1/files/{id}/versions/{version_id}": (t) => ({
		method: "DELETE",
		path: `/v1/files/${need(t.node, "node")}/versions/${need(t.version, "version")}`,
	}),
	"POST /v1/links": (t) => ({ method: "POST", path: "/v1/links", json: { node_id: need(t.node, "node"), access: "view" } }),
	"GET /v1/links": () => ({ path: "/v1/links" }),
	"GET /v1/links/{id}": (t) => ({ path: `/v1/links/${need(t.link, "link")}` }),
	"PATCH /v1/links/{id}": (t) => ({ method: "PATCH", path: `/v1/links/${need(t.link, "link")}`, json: { max_downloads: 1000 } }),
	"DELETE /v1/links/{id}": (t) => ({ method: "DELETE", path: `/v1/links/${need(t.link, "link")}` }),
	"GET /v1/l/{token}": (t) => ({ path: `/v1/l/${need(t.token, "token")}` }),
	"POST /v1/l/{token}/unlock": (t) => ({
		method: "POST",
		path: `/v1/l/${need(t.token, "token")}/unlock`,
		json: { password: t.password ?? "not the password" },
	}),
	"GET /v1/l/{token}/nodes/{id}/children": (t) => ({ path: `/v1/l/${need(t.token, "token")}/nodes/${need(t.node, "node")}/children` }),
	"GET /v1/l/{token}/nodes/{id}/content": (t) => ({ path: `/v1/l/${need(t.token, "token")}/nodes/${need(t.node, "node")}/content` }),
	"PUT /v1/l/{token}/files": (t) => {
		// Into the link's folder, or (parent_id) a folder inside it.
		const query = new URLSearchParams({ name: unique("dropped") });
		if (t.node !== undefined && t.node !== world.share.rootId) query.set("parent_id", t.node);
		return { method: "PUT", path: `/v1/l/${need(t.token, "token")}/files?${query}`, body: "dropped through a link" };
	},
	"POST /v1/shared-with-me/{id}/mount": (t) => ({ method: "POST", path: `/v1/shared-with-me/${need(t.share, "share")}/mount`, json: {} }),
	"POST /v1/webhooks": () => ({ method: "POST", path: "/v1/webhooks", json: HOOK }),
	"GET /v1/webhooks": () => ({ path: "/v1/webhooks" }),
	"GET /v1/webhooks/{id}": (t) => ({ path: `/v1/webhooks/${need(t.webhook, "webhook")}` }),
	"PATCH /v1/webhooks/{id}": (t) => ({
		method: "PATCH",
		path: `/v1/webhooks/${need(t.webhook, "webhook")}`,
		json: { description: unique("hook") },
	}),
	"DELETE /v1/webhooks/{id}": (t) => ({ method: "DELETE", path: `/v1/webhooks/${need(t.webhook, "webhook")}` }),
	"POST /v1/webhooks/{id}/rotate-secret": (t) => ({ method: "POST", path: `/v1/webhooks/${need(t.webhook, "webhook")}/rotate-secret` }),
	"POST /v1/webhooks/{id}/test": (t) => ({ method: "POST", path: `/v1/webhooks/${need(t.webhook, "webhook")}/test` }),
	"GET /v1/webhooks/{id}/deliveries": (t) => ({ path: `/v1/webhooks/${need(t.webhook, "webhook")}/deliveries` }),
	"GET /v1/webhooks/{id}/deliveries/{delivery_id}": (t) => ({
		path: `/v1/webhooks/${need(t.webhook, "webhook")}/deliveries/${need(t.delivery, "delivery")}`,
	}),
	"POST /v1/webhooks/{id}/deliveries/{delivery_id}/redeliver": (t) => ({
		method: "POST",
		path: `/v1/webhooks/${need(t.webhook, "webhook")}/deliveries/${need(t.delivery, "delivery")}/redeliver`,
	}),
	"POST /v1/webhooks/{id}/recover": (t) => ({
		method: "POST",
		path: `/v1/webhooks/${need(t.webhook, "webhook")}/recover`,
		json: { since_seq: 0 },
	}),
};

/** Rows that must run after all others: they would take fixtures with them (emptying the owner's trash). */
const LAST = new Set(["DELETE /v1/trash"]);

// ---- sending ---------------------------------------------------------------------------------------

interface Answer {
	status: number;
	text: string;
	body: unknown;
}

async function send(call: Call, actor: Actor): Promise<Answer> {
	const isLinkActor = actor === "view_link" || actor === "upload_link";
	// A link's holder has only the token in the path there.
	const token = call.token ?? (call.path.startsWith("/v1/l/") && isLinkActor ? null : credentials(actor));
	if (call.socket) {
		const dialed = await wsDialer(h.url(call.path));
		if ("socket" in dialed) {
			dialed.socket.close(1000, "matrix");
			return { status: 101, text: "", body: null };
		}
		return { status: dialed.status, text: dialed.text, body: safeJson(dialed.text) };
	}
	const res = await h.request(call.path, {
		method: call.method ?? "GET",
		token,
		headers: call.headers,
		...(call.json !== undefined ? { json: call.json } : {}),
		...(call.body !== undefined ? { body: call.body } : {}),
	});
	const text = await res.text();
	return { status: res.status, text, body: safeJson(text) };
}

function safeJson(text: string): unknown {
	try {
		return JSON.parse(text) as unknown;
	} catch {
		return null;
	}
}

/** An error body without its request_id. */
function comparable(body: unknown): unknown {
	const error = (body as { error?: Record<string, unknown> } | null)?.error;
	if (!error) return body;
	const { request_id: _id, ...rest } = error;
	return rest;
}

const isRead = (method: string) => method === "GET" || method === "HEAD";

/** Targets in or of the share: a change to one reaches the members, so the runner waits until it has. */
const SHARED_TARGETS = new Set([
	"share_root",
	"mount",
	"shared_folder",
	"shared_file",
	"old_version",
	"move_within_share",
	"move_out_of_share",
	"trashed_in_share",
	"conflict_in_share",
	"share",
	"share_viewer",
	"share_me",
]);

/** What allowed rows may have changed since the last snapshot: nothing, only journals, or something members hear of. */
let dirty: "none" | "journals" | "members" = "none";
/** Denied rows since the last check of side effects. */
let unchecked: string[] = [];

/**
 * Checks that the denied rows since the last check changed nothing. Journals
 * only grow, so one unchanged cursor after several denied rows proves that
 * none of them wrote to that journal.
 */
async function checkUnchanged(): Promise<void> {
	if (unchecked.length === 0) return;
	const rows = unchecked;
	unchecked = [];
	const [was, after] = [before, await snapshot()];
	// The next rows are judged against what is, whatever this finds.
	before = after;
	expect(after, `a denied request changed something; one of:\n${rows.join("\n")}`).toEqual(was);
}

/** What a row's request answered; for a 404, also what the same request on random ids answered. */
interface Outcome {
	answer: Answer;
	random: Answer | null;
}

/** Sends a row's request (on fresh targets when it changes something). */
async function perform(row: Row, changes: boolean): Promise<Outcome> {
	const driver = drivers[routeOf(row)];
	if (!driver) throw new Error(`no driver for ${routeOf(row)}`);
	const allowed = row.status < 400;
	// Under /v1/l/{token} the targets are the link's own: never fresh ones.
	const target = await resolve(row.target, row.actor, changes && !row.path.startsWith("/v1/l/"));
	if (row.path.startsWith("/v1/l/") && target.token === undefined) target.token = linkTokenFor(row.actor);
	const answer = await send(await driver(target, row.actor, allowed), row.actor);
	// Whoever gets a 404 for something that exists learns no more than from an id that does not.
	const compare = row.status === 404 && !row.target.startsWith("random_");
	const random = compare ? await send(await driver(randomized(target, row.actor, row.target), row.actor, false), row.actor) : null;
	return { answer, random };
}

/** Whether two rows are of one group: the same route and target, both denied, neither marked `fails`. */
const sameGroup = (a: Row, b: Row | undefined): boolean =>
	b !== undefined && a.status >= 400 && b.status >= 400 && !a.fails && !b.fails && routeOf(a) === routeOf(b) && a.target === b.target;

/** The requests of a group of denied rows, sent together when its first row runs. */
const inflight = new Map<number, Promise<Outcome>>();

/** Runs the row at `index` of `rows` (the run's order). */
async function runRow(rows: Row[], index: number): Promise<void> {
	const row = rows[index] as Row;
	const route = routeOf(row);
	const allowed = row.status < 400;
	const changes = allowed && !isRead(row.method.toUpperCase());
	if (!allowed && dirty !== "none") {
		// Everything allowed so far has landed everywhere before a denied row is judged.
		if (dirty === "members") await settle();
		else before = await snapshot();
		dirty = "none";
	}
	if (changes || row.fails)
		dirty = SHARED_TARGETS.has(row.target) || route.includes("/v1/share") || dirty === "members" ? "members" : "journals";
	if (!inflight.has(index)) {
		// Denied rows change nothing and read only standing fixtures: a group's requests can be in flight together.
		for (let j = index; j === index || sameGroup(rows[j - 1] as Row, rows[j]); j++) {
			const other = rows[j] as Row;
			inflight.set(j, perform(other, other.status < 400 && !isRead(other.method.toUpperCase())));
		}
	}
	const outcome = inflight.get(index) as Promise<Outcome>;
	inflight.delete(index);
	const { answer, random } = await outcome;
	const where = `${route} on ${row.target} by ${row.actor}: ${answer.status} ${answer.text.slice(0, 300)}`;
	if (!allowed) unchecked.push(where);
	// A row that the product fails checks its own side effects, so that a later row is never blamed.
	if (!allowed && !sameGroup(row, rows[index + 1])) await checkUnchanged();
	expect(answer.status, where).toBe(row.status);
	if (row.code !== undefined) {
		expect((answer.body as { error?: { code?: string } } | null)?.error?.code, where).toBe(row.code);
		expect(typeof (answer.body as { error: { request_id?: unknown } }).error.request_id, where).toBe("string");
	}
	if (!["owner", "editor", "viewer"].includes(row.actor) && !row.path.startsWith("/v1/l/")) {
		// Nobody without a grant is told anything of the owner's.
		const secrets = [
			world.share.rootId,
			world.share.id,
			world.sharedFile.id,
			world.sharedFolder,
			world.privateFile.id,
			world.webhook.id,
			users.owner.email,
		];
		for (const secret of secrets) expect(answer.text.includes(secret), `${where}: the answer names ${secret}`).toBe(false);
	}
	if (random) expect(comparable(answer.body), `${where}: this 404 differs from a random id's`).toEqual(comparable(random.body));
}

/** A token of a link's shape (16 bytes, base64url) that opens nothing. */
function randomToken(): string {
	return Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url");
}

/** The same target with every id of the owner's replaced by one that names nothing (the caller's own root, `me` and link stay). */
function randomized(target: Target, actor: Actor, name: string): Target {
	const ids = {
		node: "nod",
		version: "ver",
		parent: "nod",
		share: "shr",
		member: "usr",
		upload: "upl",
		link: "lnk",
		webhook: "whk",
		delivery: "msg",
	} as const;
	const out: Target = { ...target };
	for (const key of Object.keys(ids) as (keyof typeof ids)[]) {
		const id = out[key];
		if (id !== undefined && id !== "me" && id !== rootOf(actor)) out[key] = newId(ids[key]);
	}
	// The token the actor holds stays, unless it is what the row is about.
	if (name.endsWith("_link") && out.token !== undefined) out.token = randomToken();
	return out;
}

// ---- the run -----------------------------------------------------------------------------------------------

beforeAll(async () => {
	({ users, shards } = await usersOnFourShards());
	const owner = users.owner;
	await h.upload(owner, owner.rootId, "block.txt", BLOCK);
	const shareRoot = await h.mkdir(owner, owner.rootId, "Shared");
	const sharedFolder = await h.mkdir(owner, shareRoot.id, "Inside");
	const sharedFile = await twoVersions(shareRoot.id, "inside.txt");
	const marker = await h.upload(owner, shareRoot.id, "marker", "marker");
	const privateFolder = await h.mkdir(owner, owner.rootId, "Private");
	world = {
		share: { id: "", rootId: shareRoot.id, mounts: { editor: "", viewer: "" } },
		sharedFolder: sharedFolder.id,
		sharedFile,
		marker: marker.node.id,
		privateFolder: privateFolder.id,
		privateFile: await twoVersions(privateFolder.id, "private.txt"),
		privateTrashed: await trashedFile(privateFolder.id),
		trashedInShare: await trashedFile(shareRoot.id),
		conflictInShare: await conflictIn(shareRoot.id),
		ownerUpload: await uploadSession(privateFolder.id, false),
		ownerOpenUpload: await uploadSession(privateFolder.id, true),
		ownerTus: await tusUpload(privateFolder.id),
		editorUpload: "",
		editorTus: "",
		links: {
			view: await newLink(shareRoot.id, "view"),
			upload: await newLink(shareRoot.id, "upload"),
			locked: await newLink(shareRoot.id, "view", LINK_PASSWORD),
			revoked: await newLink(shareRoot.id, "view"),
		},
		webhook: await newWebhook(),
	};
	expect((await h.request(`/v1/links/${world.links.revoked.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
	// Shared last, so that the members' mounts show the finished folder.
	const body = {
		node_id: shareRoot.id,
		members: [
			{ email: users.editor.email, role: "editor" },
			{ email: users.viewer.email, role: "viewer" },
		],
	};
	const share = expectOk(await h.call<{ id: string }>("/v1/shares", { method: "POST", token: owner.token, json: body }), 201);
	world.share.id = share.id;
	freshShares = [];
	before = await snapshot();
	const mounts = await Promise.all(
		(["editor", "viewer"] as const).map(async (m) => {
			const guard = Date.now() + HANG_GUARD_MS;
			let cursor = before.cursors[m];
			for (;;) {
				const page = expectOk(
					await h.call<{ items: { share_id: string; mount_id: string | null }[] }>("/v1/shared-with-me", { token: users[m].token }),
					200,
				);
				const mount = page.items.find((i) => i.share_id === share.id)?.mount_id;
				if (mount) return mount;
				if (Date.now() > guard) throw new Error(`${m} never got the mount (hang guard)`);
				const waited = expectOk(await h.longpoll(users[m], cursor, 10), 200);
				if (waited.changes) cursor = await h.latest(users[m]);
			}
		}),
	);
	world.share.mounts = { editor: mounts[0] ?? "", viewer: mounts[1] ?? "" };
	world.editorUpload = await uploadSession(world.share.mounts.editor, false, users.editor);
	world.editorTus = await tusUpload(world.share.mounts.editor, users.editor);
	await settle();
});

describe("the authorization matrix (test/e2e/authz-matrix.json)", () => {
	it("has a row for every route of the OpenAPI document, and no row for a route it lacks", async () => {
		const doc = expectOk(await h.call<{ paths: Record<string, Record<string, unknown>> }>("/v1/openapi.json"), 200);
		const documented = new Set(
			Object.entries(doc.paths).flatMap(([path, ops]) =>
				Object.keys(ops)
					.filter((m) => ["get", "head", "post", "put", "patch", "delete", "options"].includes(m))
					.map((m) => routeOf({ method: m, path })),
			),
		);
		const covered = new Set([...matrix.rows.map(routeOf), ...matrix.not_applicable.map(routeOf)]);
		expect([...documented].filter((r) => !covered.has(r)).sort(), "routes without a row").toEqual([]);
		expect([...covered].filter((r) => !documented.has(r)).sort(), "rows for routes the document lacks").toEqual([]);
		for (const row of matrix.rows) {
			expect(Object.keys(matrix.actors), JSON.stringify(row)).toContain(row.actor);
			expect(Object.keys(matrix.targets), JSON.stringify(row)).toContain(row.target);
		}
	});

	it("puts owner, editor, viewer and stranger on four different shards", () => {
		expect(new Set(MEMBERS.map((m) => shards[m])).size, JSON.stringify(shards)).toBe(4);
	});

	// Refusals first, all on the standing fixtures; then what is allowed, each on fresh targets; last what would take fixtures away.
	const denied = matrix.rows.filter((r) => r.status >= 400);
	const allowed = matrix.rows.filter((r) => r.status < 400);
	const ordered = [...denied, ...allowed.filter((r) => !LAST.has(routeOf(r))), ...allowed.filter((r) => LAST.has(routeOf(r)))];
	for (const [index, row] of ordered.entries()) {
		const name = `${routeOf(row)} on ${row.target} by ${row.actor} answers ${row.status}${row.code ? ` ${row.code}` : ""}`;
		if (row.fails) it.fails(`${name} (fails: ${row.fails})`, () => runRow(ordered, index));
		else it(name, () => runRow(ordered, index));
	}

	it("notices a change, so that an unchanged snapshot means something", async () => {
		const was = await snapshot();
		expectOk(await h.patchNode(users.owner, world.marker, { name: unique("marker") }), 200);
		expect(await snapshot()).not.toEqual(was);
	});
});
