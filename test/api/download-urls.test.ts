/**
 * Short-lived download URLs (docs/api.md, "Download URLs"): who may ask for
 * one, what it serves (the pinned version, through the content route's
 * sendVersion), its headers, and every way it stops working. Time is moved
 * with the service's clock, never waited out.
 */
import { env, exports } from "cloudflare:workers";
import { SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { DriveClient } from "../../src/client";
import { downloadClock } from "../../workers/api/services/download-urls";
import { DOWNLOAD_URL_TTL_SECONDS } from "../../workers/api/services/tokens";
import { runAuthSuite } from "../support/envelope";
import type { ErrorBody, TestUser } from "../support/harness";
import { api, call, expectError, expectJson } from "./helpers";
import { journalUntil, share, usersOnDifferentShards } from "./sharing";

const RANDOM_ID = "nod_00000000000000000000000000";
const text = (bytes: ArrayBuffer) => new TextDecoder().decode(bytes);

interface Made {
	url: string;
	expires_at: string;
}

/** POST /v1/files/:id/download-url with `body` (JSON unless a string is given as is), answering the raw response. */
function ask(user: Pick<TestUser, "token">, fileId: string, body?: unknown): Promise<Response> {
	const init = body === undefined ? {} : typeof body === "string" ? { body } : { json: body };
	return api.request(`/v1/files/${fileId}/download-url`, { method: "POST", token: user.token, ...init });
}

/** A download URL (asserting 200). */
async function urlFor(user: Pick<TestUser, "token">, fileId: string, body: unknown = {}): Promise<string> {
	const made = await expectJson<Made>(await ask(user, fileId, body), 200);
	expect(made.url).toMatch(/^\/v1\/dl\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
	return made.url;
}

/** Fetches a download URL with no credentials at all. */
function fetchUrl(url: string, init: { method?: string; headers?: Record<string, string> } = {}): Promise<Response> {
	return api.request(url, { method: init.method ?? "GET", headers: init.headers });
}

/** The envelope without its request_id, to compare two refusals. */
function comparable(body: ErrorBody): unknown {
	const { request_id: _id, ...rest } = body.error;
	return rest;
}

afterEach(() => {
	downloadClock.now = () => Date.now();
});

describe("download URLs: the owner", () => {
	it("gets a URL that serves the file without a token, with the content route's headers and the token-in-path ones", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "report 2026.pdf", "the whole report");
		const before = Date.now();
		const made = await expectJson<Made>(await ask(user, file.node.id), 200);
		const expires = Date.parse(made.expires_at);
		expect(expires).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000 + DOWNLOAD_URL_TTL_SECONDS * 1000);
		expect(expires).toBeLessThanOrEqual(Date.now() + DOWNLOAD_URL_TTL_SECONDS * 1000);

		const res = await fetchUrl(made.url);
		expect(res.status).toBe(200);
		expect(res.headers.get("Content-Security-Policy")).toBe("sandbox");
		expect(res.headers.get("X-Content-Type-Options")).toBe("nosniff");
		expect(res.headers.get("Referrer-Policy")).toBe("no-referrer");
		expect(res.headers.get("Cache-Control")).toBe("private, no-store");
		expect(res.headers.get("ETag")).toBe(`"${file.version.id}"`);
		expect(res.headers.get("Content-Type")).toBe("application/pdf");
		expect(res.headers.get("Content-Length")).toBe(String("the whole report".length));
		// The same header the content route builds for the same name.
		const direct = await api.download(user, file.node.id);
		expect(res.headers.get("Content-Disposition")).toBe(direct.res.headers.get("Content-Disposition"));
		expect(res.headers.get("Content-Disposition")).toMatch(/^attachment; /);
		expect(text(await res.arrayBuffer())).toBe("the whole report");
	});

	it("takes no body, an empty JSON body or {}, and refuses a bad one with 400", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "a.txt", "aaa");
		for (const res of [
			await api.request(`/v1/files/${file.node.id}/download-url`, { method: "POST", token: user.token }),
			await api.request(`/v1/files/${file.node.id}/download-url`, {
				method: "POST",
				token: user.token,
				headers: { "Content-Type": "application/json" },
				body: "",
			}),
			await ask(user, file.node.id, {}),
		]) {
			const made = await expectJson<Made>(res, 200);
			expect(text(await (await fetchUrl(made.url)).arrayBuffer())).toBe("aaa");
		}
		const bad = (body: string) =>
			api.request(`/v1/files/${file.node.id}/download-url`, {
				method: "POST",
				token: user.token,
				headers: { "Content-Type": "application/json" },
				body,
			});
		await expectError(await bad("{"), 400, "INVALID_REQUEST");
		await expectError(await bad(JSON.stringify({ disposition: "download" })), 400, "INVALID_REQUEST");
		await expectError(await bad(JSON.stringify({ version_id: "" })), 400, "INVALID_REQUEST");
		await expectError(await bad(JSON.stringify({ nonsense: true })), 400, "INVALID_REQUEST");
		await expectError(await bad("[]"), 400, "INVALID_REQUEST");
		await expectError(
			await api.request(`/v1/files/${file.node.id}/download-url`, {
				method: "POST",
				token: user.token,
				headers: { "Content-Type": "text/plain" },
				body: "{}",
			}),
			400,
			"INVALID_REQUEST",
		);
	});

	it("answers 400 not_a_file for a folder, 404 for a random id or a version of another file", async () => {
		const user = await api.signup();
		const folder = await api.mkdir(user, user.rootId, "dir");
		const file = await api.upload(user, user.rootId, "f.txt", "f");
		const other = await api.upload(user, user.rootId, "g.txt", "g");
		const refused = await expectError(await ask(user, folder.id), 400, "INVALID_REQUEST");
		expect(refused.error.details).toEqual([{ reason: "not_a_file" }]);
		await expectError(await ask(user, RANDOM_ID), 404, "NOT_FOUND");
		await expectError(await ask(user, file.node.id, { version_id: "ver_0000" }), 404, "NOT_FOUND");
		await expectError(await ask(user, file.node.id, { version_id: other.version.id }), 404, "NOT_FOUND");
	});

	it("serves the version it was made for, even after a new commit; version_id pins an earlier one", async () => {
		const user = await api.signup();
		const first = await api.upload(user, user.rootId, "notes.txt", "first words");
		const url = await urlFor(user, first.node.id);
		const second = await api.upload(user, user.rootId, "notes.txt", "second, longer words", { status: 200 });
		expect(second.version.id).not.toBe(first.version.id);

		const res = await fetchUrl(url);
		expect(res.headers.get("ETag")).toBe(`"${first.version.id}"`);
		expect(text(await res.arrayBuffer())).toBe("first words");
		expect(text(await (await fetchUrl(await urlFor(user, first.node.id))).arrayBuffer())).toBe("second, longer words");
		const old = await urlFor(user, first.node.id, { version_id: first.version.id });
		expect(text(await (await fetchUrl(old)).arrayBuffer())).toBe("first words");
	});

	it("answers Range, If-Range, HEAD, If-None-Match and an unsatisfiable range as the content route does", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "digits.txt", "0123456789");
		const url = await urlFor(user, file.node.id);
		const etag = `"${file.version.id}"`;

		const ranged = await fetchUrl(url, { headers: { Range: "bytes=2-5" } });
		expect(ranged.status).toBe(206);
		expect(ranged.headers.get("Content-Range")).toBe("bytes 2-5/10");
		expect(ranged.headers.get("Cache-Control")).toBe("private, no-store");
		expect(text(await ranged.arrayBuffer())).toBe("2345");

		const current = await fetchUrl(url, { headers: { Range: "bytes=7-", "If-Range": etag } });
		expect(current.status).toBe(206);
		expect(text(await current.arrayBuffer())).toBe("789");
		const stale = await fetchUrl(url, { headers: { Range: "bytes=7-", "If-Range": '"ver_other"' } });
		expect(stale.status).toBe(200);
		expect(text(await stale.arrayBuffer())).toBe("0123456789");

		const head = await fetchUrl(url, { method: "HEAD" });
		expect(head.status).toBe(200);
		expect(head.headers.get("Content-Length")).toBe("10");
		expect(head.headers.get("ETag")).toBe(etag);
		expect(head.headers.get("Referrer-Policy")).toBe("no-referrer");
		expect((await head.arrayBuffer()).byteLength).toBe(0);

		const notModified = await fetchUrl(url, { headers: { "If-None-Match": etag } });
		expect(notModified.status).toBe(304);
		expect(notModified.headers.get("Cache-Control")).toBe("private, no-store");
		expect(notModified.headers.get("Referrer-Policy")).toBe("no-referrer");

		const past = await fetchUrl(url, { headers: { Range: "bytes=50-" } });
		expect(past.headers.get("Content-Range")).toBe("bytes */10");
		await expectError(past, 416, "RANGE_NOT_SATISFIABLE");
	});

	it("answers Content-Disposition: inline for an inline URL", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "photo.png", "not really a png");
		const res = await fetchUrl(await urlFor(user, file.node.id, { disposition: "inline" }));
		expect(res.status).toBe(200);
		expect(res.headers.get("Content-Disposition")).toMatch(/^inline; /);
		expect(res.headers.get("Content-Disposition")).toContain("photo.png");
		expect(res.headers.get("Content-Security-Policy")).toBe("sandbox");
		await res.arrayBuffer();
	});
});

describe("download URLs: time, forgeries and sign-out", () => {
	it("keeps working until it expires, then answers 401 download_url_expired (the clock moved, not waited)", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "soon.txt", "soon gone");
		const issuedAt = Date.now();
		downloadClock.now = () => issuedAt;
		const made = await expectJson<Made>(await ask(user, file.node.id), 200);
		const expires = Date.parse(made.expires_at);

		downloadClock.now = () => expires - 1000;
		const still = await fetchUrl(made.url);
		expect(still.status).toBe(200);
		// Reusable until it expires: a second request (a Range continuation, a seek) works too.
		expect(text(await still.arrayBuffer())).toBe("soon gone");
		expect((await fetchUrl(made.url, { headers: { Range: "bytes=5-" } })).status).toBe(206);

		downloadClock.now = () => expires;
		const expired = await fetchUrl(made.url);
		expect(expired.headers.get("Referrer-Policy")).toBe("no-referrer");
		const body = await expectError(expired, 401, "UNAUTHENTICATED");
		expect(body.error.details).toEqual([{ reason: "download_url_expired" }]);
		expect((await fetchUrl(made.url, { method: "HEAD" })).status).toBe(401);
	});

	it("answers a forged, malformed or foreign token, and an access token in its place, as it answers a random one: 404", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "secret.txt", "secret");
		const url = await urlFor(user, file.node.id);
		const token = url.slice("/v1/dl/".length);
		const [header = "", payload = "", signature = ""] = token.split(".");
		const random = await expectError(await fetchUrl("/v1/dl/not-a-token"), 404, "NOT_FOUND");

		const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as Record<string, unknown>;
		const secret = (env as unknown as { JWT_SECRET: string }).JWT_SECRET;
		const rawKey = new TextEncoder().encode(secret);
		const later = Math.floor(Date.now() / 1000) + 3600;
		const forged = [
			// A flipped signature.
			`${header}.${payload}.${signature.slice(0, -2)}${signature.at(-2) === "A" ? "B" : "A"}${signature.at(-1)}`,
			// Another file named in the same signature.
			`${header}.${btoa(JSON.stringify({ ...claims, vid: "ver_other" })).replace(/=+$/, "")}.${signature}`,
			// The same claims signed with JWT_SECRET itself, the access tokens' key, not the derived one.
			await new SignJWT(claims).setProtectedHeader({ alg: "HS256", typ: "JWT" }).setExpirationTime(later).sign(rawKey),
			// Unsigned.
			`${btoa(JSON.stringify({ alg: "none" })).replace(/=+$/, "")}.${payload}.`,
			// The caller's access token, which is a valid JWT of ours.
			user.token,
			"a.b.c",
			"x".repeat(5000),
		];
		for (const bad of forged) {
			const refused = await expectError(await fetchUrl(`/v1/dl/${bad}`), 404, "NOT_FOUND");
			expect(comparable(refused), bad.slice(0, 80)).toEqual(comparable(random));
			// Even long expired, a forgery is not told it expired.
			downloadClock.now = () => Date.now() + 10 * 3600_000;
			expect((await fetchUrl(`/v1/dl/${bad}`)).status).toBe(404);
			downloadClock.now = () => Date.now();
		}
		// A download URL is no access token either.
		await expectError(await api.request("/v1/me", { token: token }), 401, "UNAUTHENTICATED");
	});

	it("stops serving once the device that asked signs out (401 device_signed_out); the user's other devices are unaffected", async () => {
		const user = await api.signup("Desk");
		const file = await api.upload(user, user.rootId, "desk.txt", "on the desk");
		const browser = await api.login(user, "Browser");
		const url = await urlFor(browser, file.node.id);
		const kept = await urlFor(user, file.node.id);
		expect((await fetchUrl(url)).status).toBe(200);
		expect((await call("/v1/auth/logout", { method: "POST", token: browser.token })).status).toBe(204);
		const refused = await expectError(await fetchUrl(url), 401, "UNAUTHENTICATED");
		expect(refused.error.details).toEqual([{ reason: "device_signed_out" }]);
		expect((await fetchUrl(kept)).status).toBe(200);
	});
});

describe("download URLs: sharing", () => {
	let owner: TestUser, editor: TestUser, viewer: TestUser, stranger: TestUser;
	let folderId: string;
	let shareId: string;

	beforeAll(async () => {
		[owner, editor, viewer, stranger] = (await usersOnDifferentShards(4)) as [TestUser, TestUser, TestUser, TestUser];
		const folder = await api.mkdir(owner, owner.rootId, "Shared");
		folderId = folder.id;
		const made = await share(owner, folder.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		shareId = made.id;
		await Promise.all([editor, viewer].map((m) => journalUntil(m, (es) => es.some((e) => e.node.mount !== undefined))));
	});

	it("gives owner, editor and viewer a URL; a stranger gets the 404 of a random id", async () => {
		const file = await api.upload(owner, folderId, "plan.txt", "the plan");
		for (const member of [owner, editor, viewer]) {
			const res = await fetchUrl(await urlFor(member, file.node.id));
			expect(res.status).toBe(200);
			expect(text(await res.arrayBuffer())).toBe("the plan");
		}
		const refused = await expectError(await ask(stranger, file.node.id), 404, "NOT_FOUND");
		const random = await expectError(await ask(stranger, RANDOM_ID), 404, "NOT_FOUND");
		expect(comparable(refused)).toEqual(comparable(random));
		// A folder of the share is no file, for a member too.
		const inside = await api.mkdir(owner, folderId, `sub-${Date.now()}`);
		const notFile = await expectError(await ask(editor, inside.id), 400, "INVALID_REQUEST");
		expect(notFile.error.details).toEqual([{ reason: "not_a_file" }]);
	});

	it("lets an editor pin an earlier version, refuses a viewer one (403 read_only), and keeps a viewer's URL on the version it was made for", async () => {
		const first = await api.upload(owner, folderId, "draft.txt", "draft one");
		const viewerUrl = await urlFor(viewer, first.node.id);
		await api.upload(owner, folderId, "draft.txt", "draft two", { status: 200 });

		const old = await urlFor(editor, first.node.id, { version_id: first.version.id });
		expect(text(await (await fetchUrl(old)).arrayBuffer())).toBe("draft one");
		const refused = await expectError(await ask(viewer, first.node.id, { version_id: first.version.id }), 403, "FORBIDDEN");
		expect(refused.error.details).toEqual([{ reason: "read_only" }]);
		// Pinned when it was the head: the bytes behind a URL never change.
		expect(text(await (await fetchUrl(viewerUrl)).arrayBuffer())).toBe("draft one");
		expect(text(await (await fetchUrl(await urlFor(viewer, first.node.id))).arrayBuffer())).toBe("draft two");
	});

	it("stops serving a member once the file is in the owner's trash; the owner's URL serves as GET content does", async () => {
		const file = await api.upload(owner, folderId, "old.txt", "to be trashed");
		const memberUrl = await urlFor(editor, file.node.id);
		const ownerUrl = await urlFor(owner, file.node.id);
		expect((await api.trash(owner, file.node.id)).status).toBe(200);
		await expectError(await fetchUrl(memberUrl), 404, "NOT_FOUND");
		await expectError(await ask(editor, file.node.id), 404, "NOT_FOUND");
		// The trash keeps a file downloadable for its owner (docs/api.md, "Versions").
		await api.download(owner, file.node.id);
		expect((await fetchUrl(ownerUrl)).status).toBe(200);
	});

	it("stops serving a member who was removed from the share", async () => {
		const file = await api.upload(owner, folderId, "members-only.txt", "for members");
		const url = await urlFor(viewer, file.node.id);
		expect((await fetchUrl(url)).status).toBe(200);
		expect((await call(`/v1/shares/${shareId}/members/${viewer.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
		await expectError(await fetchUrl(url), 404, "NOT_FOUND");
		await expectError(await ask(viewer, file.node.id), 404, "NOT_FOUND");
	});
});

describe("download URLs: the client", () => {
	it("DriveClient.downloadUrl answers a URL on the client's base (relative for an empty base) that serves the file", async () => {
		const user = await api.signup();
		const file = await api.upload(user, user.rootId, "client.txt", "through the client");
		const fetcher = (input: string, init: RequestInit) => exports.default.fetch(new Request(new URL(input, api.baseUrl), init));
		const absolute = new DriveClient({ baseUrl: api.baseUrl, token: user.token, fetch: fetcher });
		const url = await absolute.downloadUrl(file.node.id, { disposition: "inline" });
		expect(url.startsWith(`${api.baseUrl}/v1/dl/`)).toBe(true);
		const res = await fetchUrl(url);
		expect(res.headers.get("Content-Disposition")).toMatch(/^inline; /);
		expect(text(await res.arrayBuffer())).toBe("through the client");

		const relative = new DriveClient({ baseUrl: "", token: user.token, fetch: fetcher });
		const path = await relative.downloadUrl(file.node.id, { versionId: file.version.id });
		expect(path.startsWith("/v1/dl/")).toBe(true);
		expect(text(await (await fetchUrl(path)).arrayBuffer())).toBe("through the client");
	});
});

// Asking for a URL answers 401 without a token, like every bearer route.
runAuthSuite(api, "download URLs", async (user) => {
	const file = await api.upload(user, user.rootId, "auth.txt", "auth");
	return { path: `/v1/files/${file.node.id}/download-url`, method: "POST", json: {} };
});
