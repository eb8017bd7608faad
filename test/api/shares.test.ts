/**
 * Sharing with people (docs/decisions/0024): users on different shards share
 * a folder; members see it mounted, read and (as editors) write through the
 * owner's hub, and hear of every change in their own journal, once.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { ChangeEntry } from "../../src/shared/schemas/sync";
import { api, call, expectError, expectJson, journal, randomBytes, signup, type TestUser } from "./helpers";

async function shardOf(user: TestUser): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return row?.shard ?? -1;
}

/** Users on pairwise different shards (placement is by id, so signing up again lands elsewhere). */
export async function usersOnDifferentShards(count: number): Promise<TestUser[]> {
	const users: TestUser[] = [];
	const taken = new Set<number>();
	for (let tries = 0; users.length < count && tries < 200; tries++) {
		const user = await signup(`Laptop ${users.length}`);
		const shard = await shardOf(user);
		if (taken.has(shard)) continue;
		taken.add(shard);
		users.push(user);
	}
	if (users.length < count) throw new Error("could not place users on different shards");
	return users;
}

async function share(owner: TestUser, nodeId: string, members: { user: TestUser; role: "viewer" | "editor" }[]) {
	const res = await call("/v1/shares", {
		method: "POST",
		token: owner.token,
		body: JSON.stringify({ node_id: nodeId, members: members.map((m) => ({ email: m.user.email, role: m.role })) }),
	});
	return expectJson<{ id: string; members: { user: { id: string } }[] }>(res, 201);
}

/** The user's whole journal, waiting (long poll, no clock) until `done` holds for it. */
async function journalUntil(user: TestUser, done: (entries: ChangeEntry[]) => boolean): Promise<ChangeEntry[]> {
	const entries: ChangeEntry[] = [];
	let cursor: string | null = null;
	for (let round = 0; round < 200; round++) {
		const page = await api.page(user, cursor, 500);
		entries.push(...page.entries);
		cursor = page.cursor;
		if (done(entries)) return entries;
		if (!page.has_more) await api.longpoll(user, cursor, 5);
	}
	throw new Error(`the journal never got there: ${JSON.stringify(entries.map((e) => [e.kind, e.node.name, e.reason]))}`);
}

function mountIn(entries: ChangeEntry[]) {
	const found = entries.find((e) => e.node.mount !== undefined);
	if (!found) throw new Error("no mount in the journal");
	return found.node;
}

describe("sharing a folder with people on other shards", () => {
	it("mounts the share in each member's root, lets the editor write and the viewer only read, and tells each member once", async () => {
		const [owner, editor, viewer, stranger] = await usersOnDifferentShards(4);
		if (!owner || !editor || !viewer || !stranger) throw new Error("unreachable");
		const project = await api.mkdir(owner, owner.rootId, "Project");
		const inside = await api.upload(owner, project.id, "plan.txt", "version one");
		const made = await share(owner, project.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		expect(made.members.map((m) => m.user.id).sort()).toEqual([editor.id, viewer.id].sort());

		// Each member's journal gets the mount, in their own root.
		const editorMount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		expect(editorMount.parent_id).toBe(editor.rootId);
		expect(editorMount.name).toBe("Project");
		const viewerMount = mountIn(await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined)));

		// Listing the mount lists the owner's folder, with the children under the mount.
		const listed = await api.listAll(editor, editorMount.id);
		expect(listed.map((n) => [n.name, n.parent_id])).toEqual([["plan.txt", editorMount.id]]);
		expect(await api.text(viewer, inside.node.id)).toBe("version one");

		// The editor writes through the owner's hub: the file is the owner's.
		const before = (await journal(editor.id)).length;
		const written = await api.upload(editor, editorMount.id, "notes.txt", "from the editor");
		expect(written.node.parent_id).toBe(editorMount.id);
		const ownerView = await api.listAll(owner, project.id);
		expect(ownerView.map((n) => n.name).sort()).toEqual(["notes.txt", "plan.txt"]);

		// The viewer cannot, and nothing changes anywhere.
		const ownerSeq = (await journal(owner.id)).length;
		const refused = await call(`/v1/files/content?parent_id=${viewerMount.id}&name=x.txt`, {
			method: "PUT",
			token: viewer.token,
			body: "nope",
		});
		await expectError(refused, 403, "FORBIDDEN");
		expect((await journal(owner.id)).length).toBe(ownerSeq);

		// The stranger gets the 404 a random id gets.
		const strangerRes = await call(`/v1/nodes/${project.id}/children`, { token: stranger.token });
		const randomRes = await call(`/v1/nodes/nod_00000000000000000000000000/children`, { token: stranger.token });
		const a = (await expectError(strangerRes, 404, "NOT_FOUND")) as { error: { message: string } };
		const b = (await expectError(randomRes, 404, "NOT_FOUND")) as { error: { message: string } };
		expect(a.error.message).toBe(b.error.message);

		// Every member hears of the editor's file exactly once.
		for (const member of [editor, viewer]) {
			const entries = await journalUntil(member, (es) => es.some((e) => e.node.name === "notes.txt"));
			expect(entries.filter((e) => e.node.name === "notes.txt" && e.kind === "created")).toHaveLength(1);
		}
		expect((await journal(editor.id)).length).toBeGreaterThan(before);
		void randomBytes;
	});
});
