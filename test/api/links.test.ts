/**
 * Public links (docs/api.md, "Public links"): the owner's routes, and what a
 * token opens without a bearer token: view, upload and view_upload links,
 * passwords and their throttling, expiry, revoke and download counting.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { Link, LinkUploadResult, PublicLink } from "../../src/shared/schemas/links";
import type { Node, NodePage } from "../../src/shared/schemas/nodes";
import {
	api,
	bytesEqual,
	call,
	expectError,
	expectJson,
	listAll,
	mkdir,
	randomBytes,
	shardOfUser,
	signup,
	upload,
	type TestUser,
} from "./helpers";

const RANDOM_TOKEN = "AAAAAAAAAAAAAAAAAAAAAA";

async function createLink(user: TestUser, body: Record<string, unknown>): Promise<Link & { url: string; token: string }> {
	return expectJson(await call("/v1/links", { method: "POST", token: user.token, body: JSON.stringify(body) }), 201);
}

/** A request under /v1/l/ with no bearer token; `session` goes in `Authorization: Link`. */
function open(
	path: string,
	init: { method?: string; session?: string; headers?: Record<string, string>; body?: string | Uint8Array } = {},
) {
	const headers = { ...init.headers };
	if (init.session !== undefined) headers.Authorization = `Link ${init.session}`;
	return call(`/v1/l/${path}`, { method: init.method, headers, body: init.body });
}

function unlock(token: string, password: string, address = "198.51.100.7"): Promise<Response> {
	return open(`${token}/unlock`, { method: "POST", body: JSON.stringify({ password }), headers: { "CF-Connecting-IP": address } });
}

/** A folder "Shared" with two files and a subfolder, and a file outside it. */
async function fixture(user: TestUser) {
	const shared = await mkdir(user, user.rootId, "Shared");
	const sub = await mkdir(user, shared.id, "Sub");
	const bytes = randomBytes(300_000);
	const big = await upload(user, shared.id, "big.bin", bytes);
	const small = await upload(user, sub.id, "small.txt", "small file");
	const outside = await upload(user, user.rootId, "secret.txt", "not in the link");
	return { shared, sub, bytes, big: big.node, small: small.node, outside: outside.node };
}

async function activityEvents(user: TestUser, linkId: string): Promise<string[]> {
	const db = await shardOfUser(user.id);
	const { results } = await db
		.prepare("SELECT event FROM activity WHERE user_id = ? AND link_id = ? ORDER BY id")
		.bind(user.id, linkId)
		.all<{ event: string }>();
	return results.map((r) => r.event);
}

describe("links: view", () => {
	it("lists a folder and downloads its files byte for byte, without a bearer token", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id, access: "view" });
		expect(link.token).toMatch(/^[A-Za-z0-9_-]{22}$/);
		expect(link.url).toBe(`http://drive.test/v1/l/${link.token}`);
		expect(link.id).toMatch(/^lnk_/);

		const res = await open(link.token);
		expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
		expect(res.headers.get("Cache-Control")).toBe("private, no-store");
		const shown = await expectJson<PublicLink>(res, 200);
		expect(shown.link).toEqual({ access: "view", expires_at: null, requires_password: false });
		expect(shown.root).toMatchObject({ id: f.shared.id, name: "Shared", type: "folder", parent_id: null });

		const page = await expectJson<NodePage>(await open(`${link.token}/nodes/${f.shared.id}/children`), 200);
		expect(page.items.map((n) => n.name)).toEqual(["big.bin", "Sub"]);
		const inner = await expectJson<NodePage>(await open(`${link.token}/nodes/${f.sub.id}/children`), 200);
		expect(inner.items.map((n) => n.name)).toEqual(["small.txt"]);

		const got = await open(`${link.token}/nodes/${f.big.id}/content`);
		expect(got.status).toBe(200);
		expect(got.headers.get("Referrer-Policy")).toBe("no-referrer");
		expect(got.headers.get("Cache-Control")).toBe("private, no-store");
		expect(bytesEqual(new Uint8Array(await got.arrayBuffer()), f.bytes)).toBe(true);
		const ranged = await open(`${link.token}/nodes/${f.big.id}/content`, { headers: { Range: "bytes=1000-1999" } });
		expect(ranged.status).toBe(206);
		expect(bytesEqual(new Uint8Array(await ranged.arrayBuffer()), f.bytes.subarray(1000, 2000))).toBe(true);
		const etag = got.headers.get("ETag") ?? "";
		const cached = await open(`${link.token}/nodes/${f.big.id}/content`, { headers: { "If-None-Match": etag } });
		expect(cached.status).toBe(304);
		expect(new TextDecoder().decode(await (await open(`${link.token}/nodes/${f.small.id}/content`)).arrayBuffer())).toBe("small file");
	});

	it("answers 404 for a node outside the link's subtree, exactly like a random id (IDOR)", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.sub.id });
		const random = "nod_00000000000000000000000000";
		for (const id of [f.outside.id, f.big.id, f.shared.id, owner.rootId, random]) {
			const body = await expectError(await open(`${link.token}/nodes/${id}/content`), 404, "NOT_FOUND");
			expect(body.error.message).toBe("node not found");
			await expectError(await open(`${link.token}/nodes/${id}/children`), 404, "NOT_FOUND");
		}
		// Another user's node too.
		const other = await signup();
		const theirs = await upload(other, other.rootId, "theirs.txt", "x");
		await expectError(await open(`${link.token}/nodes/${theirs.node.id}/content`), 404, "NOT_FOUND");
		// A file link's root is the file: nothing else is in it.
		const fileLink = await createLink(owner, { node_id: f.small.id });
		expect((await expectJson<PublicLink>(await open(fileLink.token), 200)).root?.name).toBe("small.txt");
		expect((await open(`${fileLink.token}/nodes/${f.small.id}/content`)).status).toBe(200);
		await expectError(await open(`${fileLink.token}/nodes/${f.big.id}/content`), 404, "NOT_FOUND");
		// A trashed node inside the subtree is gone for the link.
		expect((await api.trash(owner, f.small.id)).status).toBe(200);
		await expectError(await open(`${link.token}/nodes/${f.small.id}/content`), 404, "NOT_FOUND");
		await expectError(await open(fileLink.token), 404, "NOT_FOUND");
	});

	it("keeps working when its target is renamed and moved", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.sub.id });
		const elsewhere = await mkdir(owner, owner.rootId, "Elsewhere");
		expect((await api.patchNode(owner, f.sub.id, { name: "Renamed", parent_id: elsewhere.id })).status).toBe(200);
		const shown = await expectJson<PublicLink>(await open(link.token), 200);
		expect(shown.root).toMatchObject({ id: f.sub.id, name: "Renamed", parent_id: null });
		const page = await expectJson<NodePage>(await open(`${link.token}/nodes/${f.sub.id}/children`), 200);
		expect(page.items.map((n) => n.name)).toEqual(["small.txt"]);
		// What was in the link's old parent is not reachable through it.
		await expectError(await open(`${link.token}/nodes/${f.big.id}/content`), 404, "NOT_FOUND");
	});
});

describe("links: upload", () => {
	it("never reveals a name or an id: no root, children and content refused, no id in the answer", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id, access: "upload" });
		const shown = await expectJson<PublicLink>(await open(link.token), 200);
		expect(shown).toEqual({ link: { access: "upload", expires_at: null, requires_password: false }, root: null });
		const text = JSON.stringify(shown);
		for (const secret of [f.shared.id, "Shared", f.big.id, "big.bin"]) expect(text).not.toContain(secret);

		// Refused alike for a known id, the root's id and a random one: the answer says nothing about what exists.
		const refusals: string[] = [];
		for (const id of [f.big.id, f.shared.id, "nod_00000000000000000000000000"]) {
			for (const route of ["children", "content"]) {
				const body = await expectError(await open(`${link.token}/nodes/${id}/${route}`), 403, "FORBIDDEN");
				expect(body.error.details).toEqual([{ reason: "link_access" }]);
				refusals.push(JSON.stringify({ ...body.error, request_id: "" }));
			}
		}
		expect(new Set(refusals).size).toBe(1);

		const put = await open(`${link.token}/files?name=${encodeURIComponent("report.pdf")}`, { method: "PUT", body: "report bytes" });
		const result = await expectJson<LinkUploadResult>(put, 201);
		expect(result).toEqual({ name: "report.pdf", size: 12 });
		expect(put.headers.get("Referrer-Policy")).toBe("no-referrer");
		// An upload link cannot aim at a folder by id.
		const aimed = await open(`${link.token}/files?name=x.txt&parent_id=${f.sub.id}`, { method: "PUT", body: "x" });
		await expectError(aimed, 403, "FORBIDDEN");

		const stored = (await listAll(owner, f.shared.id)).find((n) => n.name === "report.pdf");
		expect(stored?.size).toBe(12);
		expect(await api.text(owner, stored?.id ?? "")).toBe("report bytes");
		expect(await activityEvents(owner, link.id)).toEqual(["link.created", "link.uploaded"]);
	});

	it("never overwrites: a taken name becomes a numbered copy, and the uploader is not told", async () => {
		const owner = await signup();
		const folder = await mkdir(owner, owner.rootId, "Inbox");
		const original = await upload(owner, folder.id, "cv.pdf", "the owner's file");
		await mkdir(owner, folder.id, "photos");
		const link = await createLink(owner, { node_id: folder.id, access: "upload" });
		for (const body of ["first upload", "second upload"]) {
			const res = await open(`${link.token}/files?name=cv.pdf`, { method: "PUT", body });
			expect(await expectJson<LinkUploadResult>(res, 201)).toEqual({ name: "cv.pdf", size: body.length });
		}
		// A folder's name is taken too.
		await expectJson(await open(`${link.token}/files?name=photos`, { method: "PUT", body: "not a folder" }), 201);
		const names = (await listAll(owner, folder.id)).map((n) => n.name).sort();
		expect(names).toEqual(["cv 2.pdf", "cv 3.pdf", "cv.pdf", "photos", "photos 2"]);
		expect(await api.text(owner, original.node.id)).toBe("the owner's file");
		const copy = (await listAll(owner, folder.id)).find((n) => n.name === "cv 2.pdf") as Node;
		expect(await api.text(owner, copy.id)).toBe("first upload");
	});

	it("a view_upload link uploads into a subfolder it can see, and answers the stored name and id", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id, access: "view_upload" });
		const res = await open(`${link.token}/files?name=small.txt&parent_id=${f.sub.id}`, { method: "PUT", body: "again" });
		const result = await expectJson<LinkUploadResult>(res, 201);
		expect(result).toMatchObject({ name: "small 2.txt", size: 5 });
		expect(result.id).toMatch(/^nod_/);
		// Not outside its subtree.
		await expectError(
			await open(`${link.token}/files?name=a.txt&parent_id=${owner.rootId}`, { method: "PUT", body: "a" }),
			404,
			"NOT_FOUND",
		);
		// A view link cannot upload.
		const view = await createLink(owner, { node_id: f.shared.id, access: "view" });
		await expectError(await open(`${view.token}/files?name=a.txt`, { method: "PUT", body: "a" }), 403, "FORBIDDEN");
	});

	it("commits nothing when the link is revoked while the body is on its way", async () => {
		const owner = await signup();
		const folder = await mkdir(owner, owner.rootId, "Drop");
		const link = await createLink(owner, { node_id: folder.id, access: "upload" });
		let reading: () => void = () => undefined;
		const started = new Promise<void>((resolve) => (reading = resolve));
		let release: () => void = () => undefined;
		const revoked = new Promise<void>((resolve) => (release = resolve));
		// Pulled only once the server reads the body, which is after every check it makes up front.
		const body = new ReadableStream<Uint8Array>(
			{
				async pull(controller) {
					reading();
					await revoked;
					controller.enqueue(new TextEncoder().encode("arrived after the revoke"));
					controller.close();
				},
			},
			{ highWaterMark: 0 },
		);
		const answer = api.request(`/v1/l/${link.token}/files?name=late.txt`, { method: "PUT", body });
		await started;
		expect((await call(`/v1/links/${link.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
		release();
		await expectError(await answer, 404, "NOT_FOUND");
		expect(await listAll(owner, folder.id)).toEqual([]);
	});

	it("refuses upload access on a file", async () => {
		const owner = await signup();
		const file = await upload(owner, owner.rootId, "a.txt", "a");
		const res = await call("/v1/links", {
			method: "POST",
			token: owner.token,
			body: JSON.stringify({ node_id: file.node.id, access: "upload" }),
		});
		await expectError(res, 400, "INVALID_REQUEST");
	});
});

describe("links: passwords", () => {
	it("needs a session, which unlock gives and a password change ends", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id, password: "open sesame please" });
		expect(link.has_password).toBe(true);
		const locked = await open(link.token);
		await expectError(locked, 401, "PASSWORD_REQUIRED");
		await expectError(await open(`${link.token}/nodes/${f.big.id}/content`), 401, "PASSWORD_REQUIRED");
		await expectError(await open(link.token, { session: "not.a.jwt" }), 401, "PASSWORD_REQUIRED");
		// A wrong password and a missing one get the same code.
		await expectError(await unlock(link.token, "wrong password!!"), 401, "PASSWORD_REQUIRED");

		const { link_session, expires_in } = await expectJson<{ link_session: string; expires_in: number }>(
			await unlock(link.token, "open sesame please"),
			200,
		);
		expect(expires_in).toBeGreaterThan(0);
		expect((await expectJson<PublicLink>(await open(link.token, { session: link_session }), 200)).link.requires_password).toBe(true);
		const got = await open(`${link.token}/nodes/${f.small.id}/content`, { session: link_session });
		expect(await got.text()).toBe("small file");
		// Neither a bearer token in its place nor this session on another link.
		await expectError(await call(`/v1/l/${link.token}`, { token: owner.token }), 401, "PASSWORD_REQUIRED");
		const other = await createLink(owner, { node_id: f.shared.id, password: "open sesame please" });
		await expectError(await open(other.token, { session: link_session }), 401, "PASSWORD_REQUIRED");
		// Nor as an access token.
		await expectError(await call("/v1/me", { headers: { Authorization: `Bearer ${link_session}` } }), 401, "UNAUTHENTICATED");

		const patched = await call(`/v1/links/${link.id}`, {
			method: "PATCH",
			token: owner.token,
			body: JSON.stringify({ password: "a new password" }),
		});
		expect((await expectJson<Link>(patched, 200)).has_password).toBe(true);
		await expectError(await open(link.token, { session: link_session }), 401, "PASSWORD_REQUIRED");
		await expectJson(await unlock(link.token, "a new password"), 200);

		// Removing the password opens the link to anyone with the token.
		await expectJson(
			await call(`/v1/links/${link.id}`, { method: "PATCH", token: owner.token, body: JSON.stringify({ password: null }) }),
			200,
		);
		expect((await expectJson<PublicLink>(await open(link.token), 200)).link.requires_password).toBe(false);
	});

	it("rate-limits attempts before the password is checked: past the limit even the right one gets 429", async () => {
		const owner = await signup();
		const folder = await mkdir(owner, owner.rootId, "Locked");
		const link = await createLink(owner, { node_id: folder.id, password: "the right password" });
		for (let i = 0; i < 5; i++) await expectError(await unlock(link.token, `wrong guess ${i}`), 401, "PASSWORD_REQUIRED");
		const refused = await unlock(link.token, "the right password");
		const body = await expectError(refused, 429, "RATE_LIMITED");
		expect(Number(refused.headers.get("Retry-After"))).toBeGreaterThan(0);
		expect(refused.headers.get("Referrer-Policy")).toBe("no-referrer");
		expect(body.error.details).toEqual([{ retry_after_seconds: expect.any(Number) }]);
		// Another address still may try.
		await expectJson(await unlock(link.token, "the right password", "203.0.113.9"), 200);
		const events = await activityEvents(owner, link.id);
		expect(events.filter((e) => e === "link.password_failed")).toHaveLength(5);
		expect(events.filter((e) => e === "link.locked")).toHaveLength(1);
	});

	it("answers 400 to unlocking a link without a password", async () => {
		const owner = await signup();
		const link = await createLink(owner, { node_id: owner.rootId });
		await expectError(await unlock(link.token, "anything at all"), 400, "INVALID_REQUEST");
	});
});

describe("links: states", () => {
	it("answers 410 LINK_EXPIRED past the expiry, and 404 once revoked or for an unknown token", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const expired = await createLink(owner, { node_id: f.shared.id, expires_at: "2020-01-01T00:00:00Z" });
		expect(expired.expires_at).toBe("2020-01-01T00:00:00.000Z");
		await expectError(await open(expired.token), 410, "LINK_EXPIRED");
		await expectError(await open(`${expired.token}/nodes/${f.big.id}/content`), 410, "LINK_EXPIRED");
		// Expiring an existing link (set directly: no test waits for a clock).
		const live = await createLink(owner, { node_id: f.shared.id });
		await expectJson(await open(live.token), 200);
		await env.DIRECTORY.prepare("UPDATE links SET expires_at = ? WHERE id = ?").bind("2021-06-01T00:00:00.000Z", live.id).run();
		await expectError(await open(live.token), 410, "LINK_EXPIRED");
		// The owner can extend it again.
		await expectJson(
			await call(`/v1/links/${live.id}`, { method: "PATCH", token: owner.token, body: JSON.stringify({ expires_at: null }) }),
			200,
		);
		await expectJson(await open(live.token), 200);

		const res = await call(`/v1/links/${live.id}`, { method: "DELETE", token: owner.token });
		expect(res.status).toBe(204);
		const revoked = await expectError(await open(live.token), 404, "NOT_FOUND");
		const unknown = await expectError(await open(RANDOM_TOKEN), 404, "NOT_FOUND");
		expect(revoked.error.message).toBe(unknown.error.message);
		const malformed = await open("short");
		await expectError(malformed, 404, "NOT_FOUND");
		expect(malformed.headers.get("Cache-Control")).toBe("private, no-store");
		await expectError(await call(`/v1/links/${live.id}`, { token: owner.token }), 404, "NOT_FOUND");
		expect(await activityEvents(owner, live.id)).toEqual(["link.created", "link.updated", "link.revoked"]);
	});

	it("counts only downloads that start at byte 0: Range continuations and HEAD do not count", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id, max_downloads: 1 });
		const first = await open(`${link.token}/nodes/${f.big.id}/content`, { headers: { Range: "bytes=0-9" } });
		expect(first.status).toBe(206);
		expect(bytesEqual(new Uint8Array(await first.arrayBuffer()), f.bytes.subarray(0, 10))).toBe(true);
		for (let i = 0; i < 3; i++) {
			const more = await open(`${link.token}/nodes/${f.big.id}/content`, { headers: { Range: "bytes=10-" } });
			expect(more.status).toBe(206);
			expect(bytesEqual(new Uint8Array(await more.arrayBuffer()), f.bytes.subarray(10))).toBe(true);
		}
		const head = await open(`${link.token}/nodes/${f.big.id}/content`, { method: "HEAD" });
		expect(head.status).toBe(200);
		expect((await expectJson<Link>(await call(`/v1/links/${link.id}`, { token: owner.token }), 200)).download_count).toBe(1);
		// A second download from the start is refused; continuations still work.
		const again = await expectError(await open(`${link.token}/nodes/${f.big.id}/content`), 410, "LINK_EXPIRED");
		expect(again.error.details).toEqual([{ reason: "max_downloads" }]);
		await expectError(await open(`${link.token}/nodes/${f.small.id}/content`), 410, "LINK_EXPIRED");
		expect((await open(`${link.token}/nodes/${f.big.id}/content`, { headers: { Range: "bytes=5-" } })).status).toBe(206);
		expect((await expectJson<Link>(await call(`/v1/links/${link.id}`, { token: owner.token }), 200)).download_count).toBe(1);
		expect((await activityEvents(owner, link.id)).filter((e) => e === "link.downloaded")).toHaveLength(1);
	});
});

describe("links: the owner's routes", () => {
	it("lists, reads, changes and revokes the caller's links; the token is shown only at creation", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const a = await createLink(owner, { node_id: f.shared.id });
		const b = await createLink(owner, { node_id: f.sub.id, access: "upload", max_downloads: 3 });
		const all = await expectJson<{ items: Link[]; next_cursor: string | null }>(await call("/v1/links", { token: owner.token }), 200);
		expect(all.items.map((l) => l.id)).toEqual([b.id, a.id]);
		for (const item of all.items) {
			expect(item).not.toHaveProperty("token");
			expect(item).not.toHaveProperty("url");
		}
		const onSub = await expectJson<{ items: Link[] }>(await call(`/v1/links?node_id=${f.sub.id}`, { token: owner.token }), 200);
		expect(onSub.items.map((l) => l.id)).toEqual([b.id]);
		const paged = await expectJson<{ items: Link[]; next_cursor: string }>(await call("/v1/links?limit=1", { token: owner.token }), 200);
		expect(paged.items.map((l) => l.id)).toEqual([b.id]);
		const rest = await expectJson<{ items: Link[] }>(
			await call(`/v1/links?limit=1&cursor=${paged.next_cursor}`, { token: owner.token }),
			200,
		);
		expect(rest.items.map((l) => l.id)).toEqual([a.id]);

		const read = await expectJson<Link>(await call(`/v1/links/${b.id}`, { token: owner.token }), 200);
		expect(read).toMatchObject({
			id: b.id,
			node_id: f.sub.id,
			access: "upload",
			max_downloads: 3,
			has_password: false,
			created_by: owner.id,
		});
		const changed = await call(`/v1/links/${b.id}`, {
			method: "PATCH",
			token: owner.token,
			body: JSON.stringify({ access: "view", max_downloads: null, expires_at: "2099-01-01T00:00:00+01:00" }),
		});
		expect(await expectJson<Link>(changed, 200)).toMatchObject({
			access: "view",
			max_downloads: null,
			expires_at: "2098-12-31T23:00:00.000Z",
		});

		// Bad input changes nothing.
		for (const body of [{}, { access: "edit" }, { max_downloads: 0 }, { expires_at: "tomorrow" }, { password: "short" }, { extra: 1 }]) {
			const res = await call(`/v1/links/${b.id}`, { method: "PATCH", token: owner.token, body: JSON.stringify(body) });
			await expectError(res, 400, "INVALID_REQUEST");
		}
		const fileLink = await createLink(owner, { node_id: f.small.id });
		await expectError(
			await call(`/v1/links/${fileLink.id}`, { method: "PATCH", token: owner.token, body: JSON.stringify({ access: "view_upload" }) }),
			400,
			"INVALID_REQUEST",
		);
		await expectError(
			await call("/v1/links", { method: "POST", token: owner.token, body: JSON.stringify({ node_id: f.small.id, access: "all" }) }),
			400,
			"INVALID_REQUEST",
		);
		expect(await expectJson<Link>(await call(`/v1/links/${b.id}`, { token: owner.token }), 200)).toMatchObject({ access: "view" });
	});

	it("another user cannot see, change or revoke my links, nor link my nodes: 404 like a random id", async () => {
		const owner = await signup();
		const f = await fixture(owner);
		const link = await createLink(owner, { node_id: f.shared.id });
		const stranger = await signup();
		const random = "lnk_00000000000000000000000000";
		const bodies: string[] = [];
		for (const id of [link.id, random]) {
			const answers = [
				await call(`/v1/links/${id}`, { token: stranger.token }),
				await call(`/v1/links/${id}`, { method: "PATCH", token: stranger.token, body: JSON.stringify({ access: "view" }) }),
				await call(`/v1/links/${id}`, { method: "DELETE", token: stranger.token }),
			];
			for (const res of answers) bodies.push(JSON.stringify({ ...(await expectError(res, 404, "NOT_FOUND")).error, request_id: "" }));
		}
		expect(new Set(bodies).size).toBe(1);
		const onNode = await call("/v1/links", { method: "POST", token: stranger.token, body: JSON.stringify({ node_id: f.shared.id }) });
		const onRandom = await call("/v1/links", {
			method: "POST",
			token: stranger.token,
			body: JSON.stringify({ node_id: "nod_00000000000000000000000000" }),
		});
		const [x, y] = [await expectError(onNode, 404, "NOT_FOUND"), await expectError(onRandom, 404, "NOT_FOUND")];
		expect(x.error.message).toBe(y.error.message);
		await expectError(await call(`/v1/links?node_id=${f.shared.id}`, { token: stranger.token }), 404, "NOT_FOUND");
		expect((await expectJson<{ items: Link[] }>(await call("/v1/links", { token: stranger.token }), 200)).items).toEqual([]);
		// The link still works.
		await expectJson(await open(link.token), 200);
		await expectError(await call("/v1/links", { method: "POST", body: JSON.stringify({ node_id: f.shared.id }) }), 401, "UNAUTHENTICATED");
	});

	it("stores only the token's hash", async () => {
		const owner = await signup();
		const link = await createLink(owner, { node_id: owner.rootId });
		const row = await env.DIRECTORY.prepare("SELECT * FROM links WHERE id = ?").bind(link.id).first<Record<string, unknown>>();
		expect(JSON.stringify(row)).not.toContain(link.token);
		expect(row?.token_hash).toMatch(/^[0-9a-f]{64}$/);
	});
});

describe("links: contract", () => {
	it("documents every link route as an extension: owner routes with bearer auth, /v1/l routes without", async () => {
		type Operation = { security?: unknown[]; description?: string };
		const doc = await expectJson<{ paths: Record<string, Record<string, Operation>> }>(await call("/v1/openapi.json"), 200);
		const routes: [string, string, boolean][] = [
			["post", "/v1/links", true],
			["get", "/v1/links", true],
			["get", "/v1/links/{id}", true],
			["patch", "/v1/links/{id}", true],
			["delete", "/v1/links/{id}", true],
			["get", "/v1/l/{token}", false],
			["post", "/v1/l/{token}/unlock", false],
			["get", "/v1/l/{token}/nodes/{id}/children", false],
			["get", "/v1/l/{token}/nodes/{id}/content", false],
			["put", "/v1/l/{token}/files", false],
		];
		for (const [method, path, bearer] of routes) {
			const operation = doc.paths[path]?.[method];
			expect(operation, `${method} ${path}`).toBeDefined();
			expect(operation?.description, `${method} ${path}`).toMatch(/^Extension of the v1 contract/);
			if (bearer) expect(operation?.security).toEqual([{ bearerAuth: [] }]);
			else expect(operation?.security).toBeUndefined();
		}
	});

	it("answers bad input on the public routes with 400 and changes nothing", async () => {
		const owner = await signup();
		const folder = await mkdir(owner, owner.rootId, "Box");
		const view = await createLink(owner, { node_id: folder.id, access: "view_upload", password: "a long password" });
		await expectError(await open(`${view.token}/unlock`, { method: "POST", body: "{" }), 400, "INVALID_REQUEST");
		await expectError(await open(`${view.token}/unlock`, { method: "POST", body: JSON.stringify({}) }), 400, "INVALID_REQUEST");
		const { link_session } = await expectJson<{ link_session: string }>(await unlock(view.token, "a long password"), 200);
		await expectError(await open(`${view.token}/files`, { method: "PUT", body: "x", session: link_session }), 400, "INVALID_REQUEST");
		await expectError(
			await open(`${view.token}/files?name=a%2Fb`, { method: "PUT", body: "x", session: link_session }),
			400,
			"INVALID_REQUEST",
		);
		const bad = await open(`${view.token}/nodes/${folder.id}/children?cursor=nonsense`, { session: link_session });
		await expectError(bad, 400, "INVALID_REQUEST");
		await expectError(await open(`${view.token}/nodes/${folder.id}/children?limit=0`, { session: link_session }), 400, "INVALID_REQUEST");
		expect(await listAll(owner, folder.id)).toEqual([]);
		const link = await expectJson<Link>(await call(`/v1/links/${view.id}`, { token: owner.token }), 200);
		expect(link.download_count).toBe(0);
	});

	it("counts concurrent downloads atomically: exactly max_downloads of them get the bytes", async () => {
		const owner = await signup();
		const folder = await mkdir(owner, owner.rootId, "Popular");
		const file = await upload(owner, folder.id, "song.mp3", "la la la");
		const link = await createLink(owner, { node_id: folder.id, max_downloads: 3 });
		const answers = await Promise.all(Array.from({ length: 10 }, () => open(`${link.token}/nodes/${file.node.id}/content`)));
		const statuses = await Promise.all(
			answers.map(async (res) => {
				await res.arrayBuffer();
				return res.status;
			}),
		);
		expect(statuses.filter((s) => s === 200)).toHaveLength(3);
		expect(statuses.filter((s) => s === 410)).toHaveLength(7);
		expect((await expectJson<Link>(await call(`/v1/links/${link.id}`, { token: owner.token }), 200)).download_count).toBe(3);
	});
});
