/**
 * The activity log (docs/api.md, "Activity"): share and version events with
 * their actors, readable by the owner and by editors of a shared node,
 * paged newest first and pruned after 180 days; and a conflict between an
 * owner and an editor, listed for whoever lost.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ActivityItem, ActivityPage } from "../../src/shared/schemas/activity";
import type { ConflictPage } from "../../src/shared/schemas/sync";
import { runHousekeeping } from "../../workers/api/scheduled";
import { dropUnits } from "../../workers/api/services/gc-queue";
import { expectOk, type TestUser } from "../support/harness";
import { api, call, expectError, expectJson, shardOfUser } from "./helpers";
import { journalUntil, mountIn, share, usersOnDifferentShards } from "./sharing";

const DAY = 86_400_000;

function activity(user: TestUser, query = ""): Promise<Response> {
	return call(`/v1/activity${query}`, { token: user.token });
}

/** Every item of the log, following cursors `limit` at a time. */
async function allActivity(user: TestUser, query = "", limit = 100): Promise<ActivityItem[]> {
	const items: ActivityItem[] = [];
	let cursor: string | null = null;
	for (let pages = 0; pages < 100; pages++) {
		const params = new URLSearchParams(query);
		params.set("limit", String(limit));
		if (cursor !== null) params.set("cursor", cursor);
		const page = await expectJson<ActivityPage>(await activity(user, `?${params}`), 200);
		items.push(...page.items);
		cursor = page.next_cursor;
		if (cursor === null) return items;
	}
	throw new Error("the log never ended");
}

async function conflicts(user: TestUser): Promise<ConflictPage> {
	return expectOk(await api.call<ConflictPage>("/v1/conflicts", { token: user.token }), 200);
}

async function addViewer(owner: TestUser, shareId: string, viewer: TestUser): Promise<void> {
	const body = JSON.stringify({ members: [{ email: viewer.email, role: "viewer" }] });
	await expectJson(await call(`/v1/shares/${shareId}/members`, { method: "POST", token: owner.token, body }), 200);
}

/** A shared folder "Project" with one file: the owner, an editor, a viewer and a stranger, all on different shards. */
async function sharedProject() {
	const [owner, editor, viewer, stranger] = await usersOnDifferentShards(4);
	if (!owner || !editor || !viewer || !stranger) throw new Error("unreachable");
	const project = await api.mkdir(owner, owner.rootId, "Project");
	const file = await api.upload(owner, project.id, "plan.txt", "version one");
	const made = await share(owner, project.id, [{ user: editor, role: "editor" }]);
	const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
	return { owner, editor, viewer, stranger, project, file, shareId: made.id, mount };
}

describe("the owner's activity log", () => {
	it("lists share and version events newest first, each with its actor's email and device", async () => {
		const { owner, editor, viewer, project, file, shareId } = await sharedProject();
		await addViewer(owner, shareId, viewer);
		const setRole = await call(`/v1/shares/${shareId}/members/${viewer.id}`, {
			method: "PATCH",
			token: owner.token,
			body: JSON.stringify({ role: "editor" }),
		});
		expect(setRole.status).toBe(200);
		const removed = await call(`/v1/shares/${shareId}/members/${viewer.id}`, { method: "DELETE", token: owner.token });
		expect(removed.status).toBe(204);
		const pinned = await call(`/v1/files/${file.node.id}/versions/${file.version.id}`, {
			method: "PATCH",
			token: owner.token,
			body: JSON.stringify({ keep_forever: true }),
		});
		expect(pinned.status).toBe(200);

		const items = await allActivity(owner);
		const events = items.map((i) => i.event);
		// The share and its first member are one batch, one millisecond: their order between them is the ids'.
		expect(events.slice(0, 4)).toEqual(["version.pinned", "share.member_removed", "share.role_changed", "share.member_added"]);
		expect(events.slice(4).sort()).toEqual(["share.created", "share.member_added"]);
		expect(items.map((i) => i.id)).toEqual(
			items
				.map((i) => i.id)
				.sort()
				.reverse(),
		);
		for (const item of items) {
			expect(item.actor).toMatchObject({ type: "user", id: owner.id, email: owner.email });
			expect(item.actor.device).toBe("Laptop 0");
		}
		expect(items[0]).toMatchObject({ node_id: file.node.id, version_id: file.version.id });
		expect(items[1]).toMatchObject({ node_id: project.id, share_id: shareId, details: { member: viewer.email } });
		expect(items[2]?.details).toMatchObject({ member: viewer.email, role: "editor" });

		// The owner filters by node: the file's events only.
		expect((await allActivity(owner, `node_id=${file.node.id}`)).map((i) => i.event)).toEqual(["version.pinned"]);
		// The editor's own log has the share as it reached them.
		expect((await allActivity(editor)).map((i) => i.event)).toContain("share.member_added");
	});

	it("pages with a cursor through exactly the whole log, and refuses a cursor that is not one", async () => {
		const { owner, file } = await sharedProject();
		for (const label of ["a", "b", "c"]) {
			const res = await call(`/v1/files/${file.node.id}/versions/${file.version.id}`, {
				method: "PATCH",
				token: owner.token,
				body: JSON.stringify({ label }),
			});
			expect(res.status).toBe(200);
		}
		const whole = await allActivity(owner);
		expect(whole.length).toBe(5);
		const paged = await allActivity(owner, "", 2);
		expect(paged.map((i) => i.id)).toEqual(whole.map((i) => i.id));
		expect(whole.slice(0, 3).map((i) => i.details)).toEqual([{ label: "c" }, { label: "b" }, { label: "a" }]);
		await expectError(await activity(owner, "?cursor=nonsense"), 400, "INVALID_REQUEST");
		await expectError(await activity(owner, "?limit=0"), 400, "INVALID_REQUEST");
	});
});

describe("who may read a shared node's activity", () => {
	it("gives an editor the owner's events for the node without link settings, a viewer 403, and a stranger the 404 of a random id", async () => {
		const { owner, editor, viewer, stranger, project, shareId, mount } = await sharedProject();
		await addViewer(owner, shareId, viewer);
		const link = await expectJson<{ id: string }>(
			await call("/v1/links", { method: "POST", token: owner.token, body: JSON.stringify({ node_id: project.id, access: "view" }) }),
			201,
		);

		const owners = await allActivity(owner, `node_id=${project.id}`);
		const linkCreated = owners.find((i) => i.event === "link.created");
		expect(linkCreated).toMatchObject({ link_id: link.id, details: { access: "view" } });

		// Through the mount, or by the owner's id: the same events, without the link's id or settings.
		for (const id of [mount.id, project.id]) {
			const seen = await allActivity(editor, `node_id=${id}`);
			expect(seen.map((i) => i.id)).toEqual(owners.map((i) => i.id));
			expect(seen.find((i) => i.event === "link.created")).toMatchObject({ link_id: null, details: null });
			expect(seen.find((i) => i.event === "share.created")?.actor).toMatchObject({ id: owner.id, email: owner.email });
		}

		const refused = (await expectError(await activity(viewer, `?node_id=${project.id}`), 403, "FORBIDDEN")) as {
			error: { details: { reason: string }[] };
		};
		expect(refused.error.details[0]?.reason).toBe("read_only");

		const a = (await expectError(await activity(stranger, `?node_id=${project.id}`), 404, "NOT_FOUND")) as { error: { message: string } };
		const b = (await expectError(await activity(stranger, "?node_id=nod_00000000000000000000000000"), 404, "NOT_FOUND")) as {
			error: { message: string };
		};
		expect(a.error.message).toBe(b.error.message);
	});
});

describe("retention", () => {
	it("prunes rows older than 180 days on the cron and keeps newer ones", async () => {
		const { owner } = await sharedProject();
		const db = await shardOfUser(owner.id);
		const rows = await allActivity(owner);
		const [older, newer] = rows;
		if (!older || !newer) throw new Error("expected two events");
		const now = Date.now();
		await db
			.prepare("UPDATE activity SET at = ?1 WHERE user_id = ?2 AND id = ?3")
			.bind(new Date(now - 181 * DAY).toISOString(), owner.id, older.id)
			.run();
		await db
			.prepare("UPDATE activity SET at = ?1 WHERE user_id = ?2 AND id = ?3")
			.bind(new Date(now - 179 * DAY).toISOString(), owner.id, newer.id)
			.run();
		await runHousekeeping(env, now, dropUnits);
		const left = (await allActivity(owner)).map((i) => i.id);
		expect(left).not.toContain(older.id);
		expect(left).toContain(newer.id);
		expect(left.length).toBe(rows.length - 1);
	});
});

describe("an owner and an editor editing one file at once", () => {
	it("keeps one winner and one conflicted copy named for the loser's device, both readable by both, listed for the loser", async () => {
		const { owner, editor, file, mount } = await sharedProject();
		const base = file.version.id;
		const [byOwner, byEditor] = await Promise.all([
			api.putContent(owner, file.node.parent_id ?? "", "plan.txt", "the owner's edit", { ifMatch: base }),
			api.putContent(editor, mount.id, "plan.txt", "the editor's edit", { ifMatch: base }),
		]);
		const results = [
			{ user: owner, reply: byOwner, text: "the owner's edit", device: "Laptop 0" },
			{ user: editor, reply: byEditor, text: "the editor's edit", device: "Laptop 1" },
		];
		const winners = results.filter((r) => r.reply.body.conflict === null);
		const losers = results.filter((r) => r.reply.body.conflict !== null);
		expect(winners).toHaveLength(1);
		expect(losers).toHaveLength(1);
		const [winner] = winners;
		const [loser] = losers;
		if (!winner || !loser) throw new Error("unreachable");
		expect(winner.reply.status).toBe(200);
		expect(loser.reply.status).toBe(201);
		const copy = loser.reply.body.node;
		expect(copy.name).toContain(`(conflicted copy ${loser.device} `);
		expect(loser.reply.body.conflict).toEqual({ node_id: file.node.id, reason: "stale_base" });

		for (const user of [owner, editor]) {
			expect(await api.text(user, file.node.id)).toBe(winner.text);
			expect(await api.text(user, copy.id)).toBe(loser.text);
		}

		const listed = await conflicts(loser.user);
		expect(listed.items.map((i) => i.node.id)).toEqual([copy.id]);
		expect(listed.items[0]?.conflicts_with?.id).toBe(file.node.id);
	});

	it("lists an editor's copy in the owner's tree for the editor, under their mount, and lets the editor resolve it", async () => {
		const { owner, editor, viewer, file, mount, shareId } = await sharedProject();
		await api.upload(owner, file.node.parent_id ?? "", "plan.txt", "the owner's second version", { ifMatch: file.version.id, status: 200 });
		const stale = await api.putContent(editor, mount.id, "plan.txt", "the editor's late edit", { ifMatch: file.version.id });
		expect(stale.status).toBe(201);
		const copy = stale.body.node;
		expect(copy.parent_id).toBe(mount.id);

		// Own copies first in time order with shared ones: the editor has none of their own, so only this one.
		const own = await api.upload(editor, editor.rootId, "mine.txt", "one");
		await api.upload(editor, editor.rootId, "mine.txt", "two", { ifMatch: own.version.id, status: 200 });
		const ownCopy = await api.upload(editor, editor.rootId, "mine.txt", "three", { ifMatch: own.version.id });
		const listed = await conflicts(editor);
		expect(listed.items.map((i) => i.node.id)).toEqual([ownCopy.node.id, copy.id]);
		expect(listed.items[1]?.node.parent_id).toBe(mount.id);
		const paged = expectOk(await api.call<ConflictPage>("/v1/conflicts?limit=1", { token: editor.token }), 200);
		expect(paged.items.map((i) => i.node.id)).toEqual([ownCopy.node.id]);
		const next = expectOk(
			await api.call<ConflictPage>(`/v1/conflicts?limit=1&cursor=${encodeURIComponent(paged.next_cursor ?? "")}`, { token: editor.token }),
			200,
		);
		expect(next.items.map((i) => i.node.id)).toEqual([copy.id]);
		expect(next.next_cursor).toBeNull();
		// The owner sees it in their own tree too; a member who did not write it does not have it listed.
		expect((await conflicts(owner)).items.map((i) => i.node.id)).toEqual([copy.id]);
		await addViewer(owner, shareId, viewer);
		expect((await conflicts(viewer)).items).toEqual([]);
		await expectError(await call(`/v1/conflicts/${copy.id}/resolve`, { method: "POST", token: viewer.token }), 403, "FORBIDDEN");
		const viewerKeeps = await call(`/v1/conflicts/${copy.id}/resolve`, {
			method: "POST",
			token: viewer.token,
			body: JSON.stringify({ keep: "copy" }),
		});
		await expectError(viewerKeeps, 403, "FORBIDDEN");

		const resolved = await expectJson<{ id: string; conflict_of: string | null }>(
			await call(`/v1/conflicts/${copy.id}/resolve`, { method: "POST", token: editor.token }),
			200,
		);
		expect(resolved).toMatchObject({ id: copy.id, conflict_of: null });
		expect((await conflicts(editor)).items.map((i) => i.node.id)).toEqual([ownCopy.node.id]);
		expect((await conflicts(owner)).items).toEqual([]);
	});
});
