/**
 * Sharing with people (docs/decisions/0024): users on different shards share
 * a folder; members see it mounted, read and (as editors) write through the
 * owner's hub, and hear of every change in their own journal, once.
 */
import { describe, expect, it } from "vitest";
import { decodeJournalCursor } from "../../src/shared/journal";
import { api, blobCount, call, expectError, expectJson, journal, randomBytes } from "./helpers";
import { journalUntil, mountIn, share, usersOnDifferentShards } from "./sharing";

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

describe("a share's life", () => {
	it("tells members when a node moves out, a member is removed, leaves, or the share ends; refuses moves across owners", async () => {
		const [owner, editor, viewer] = await usersOnDifferentShards(3);
		if (!owner || !editor || !viewer) throw new Error("unreachable");
		const project = await api.mkdir(owner, owner.rootId, "Team");
		const elsewhere = await api.mkdir(owner, owner.rootId, "Private");
		const file = await api.upload(owner, project.id, "a.txt", "a");
		const made = await share(owner, project.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined));

		// An editor cannot move the owner's file into their own tree, nor their own file into the share.
		const own = await api.upload(editor, editor.rootId, "mine.txt", "mine");
		const out = await call(`/v1/nodes/${file.node.id}`, {
			method: "PATCH",
			token: editor.token,
			body: JSON.stringify({ parent_id: editor.rootId }),
		});
		const body = (await expectError(out, 400, "INVALID_REQUEST")) as { error: { details: { reason: string }[] } };
		expect(body.error.details[0]?.reason).toBe("cross_owner_move");
		const into = await call(`/v1/nodes/${own.node.id}`, {
			method: "PATCH",
			token: editor.token,
			body: JSON.stringify({ parent_id: mount.id }),
		});
		await expectError(into, 400, "INVALID_REQUEST");
		// The editor cannot rename the shared folder itself; the viewer cannot rename anything.
		await expectError(
			await call(`/v1/nodes/${project.id}`, { method: "PATCH", token: editor.token, body: JSON.stringify({ name: "Mine now" }) }),
			403,
			"FORBIDDEN",
		);
		await expectError(
			await call(`/v1/nodes/${file.node.id}`, { method: "PATCH", token: viewer.token, body: JSON.stringify({ name: "b.txt" }) }),
			403,
			"FORBIDDEN",
		);
		// The member renames their mount in their own tree; the owner's folder keeps its name.
		const renamed = await expectJson<{ name: string }>(
			await call(`/v1/nodes/${mount.id}`, { method: "PATCH", token: editor.token, body: JSON.stringify({ name: "Team (work)" }) }),
			200,
		);
		expect(renamed.name).toBe("Team (work)");
		expect((await api.node(owner, project.id)).name).toBe("Team");

		// The owner moves the file out: members hear "moved_out", the owner keeps it.
		await expectJson(
			await call(`/v1/nodes/${file.node.id}`, { method: "PATCH", token: owner.token, body: JSON.stringify({ parent_id: elsewhere.id }) }),
			200,
		);
		for (const member of [editor, viewer]) {
			const entries = await journalUntil(member, (es) => es.some((e) => e.reason === "moved_out"));
			expect(entries.find((e) => e.reason === "moved_out")?.node.id).toBe(file.node.id);
		}
		await expectError(await call(`/v1/nodes/${file.node.id}`, { token: editor.token }), 404, "NOT_FOUND");

		// The viewer leaves; the editor is removed by the owner; each loses the mount.
		expect((await call(`/v1/shares/${made.id}/members/me`, { method: "DELETE", token: viewer.token })).status).toBe(204);
		await journalUntil(viewer, (es) => es.some((e) => e.reason === "unshared"));
		await expectError(await call(`/v1/nodes/${project.id}/children`, { token: viewer.token }), 404, "NOT_FOUND");
		expect((await call(`/v1/shares/${made.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
		await journalUntil(editor, (es) => es.some((e) => e.reason === "unshared"));
		await expectError(await call(`/v1/nodes/${mount.id}/children`, { token: editor.token }), 404, "NOT_FOUND");
		const incoming = await expectJson<{ items: unknown[] }>(await call("/v1/shared-with-me", { token: editor.token }), 200);
		expect(incoming.items).toEqual([]);
	});

	it("unmounts on delete and mounts again from Shared with me", async () => {
		const [owner, member] = await usersOnDifferentShards(2);
		if (!owner || !member) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Photos");
		const made = await share(owner, folder.id, [{ user: member, role: "viewer" }]);
		const mount = mountIn(await journalUntil(member, (es) => es.some((e) => e.node.mount !== undefined)));
		expect((await call(`/v1/nodes/${mount.id}`, { method: "DELETE", token: member.token })).status).toBe(200);
		expect((await api.listAll(owner, owner.rootId)).map((n) => n.name)).toContain("Photos");
		expect((await api.listAll(member, member.rootId)).map((n) => n.name)).not.toContain("Photos");
		const listed = await expectJson<{ items: { share_id: string; mount_id: string | null }[] }>(
			await call("/v1/shared-with-me", { token: member.token }),
			200,
		);
		expect(listed.items).toEqual([expect.objectContaining({ share_id: made.id, mount_id: null })]);
		const again = await expectJson<{ id: string; name: string }>(
			await call(`/v1/shared-with-me/${made.id}/mount`, { method: "POST", token: member.token, body: "{}" }),
			201,
		);
		expect(again.name).toBe("Photos");
		await api.upload(owner, folder.id, "x.jpg", "x");
		expect((await api.listAll(member, again.id)).map((n) => n.name)).toEqual(["x.jpg"]);
	});
});

describe("realtime fan-out", () => {
	it("brings every change of three users to both devices of each, in the owner's order, once per member", async () => {
		const [owner, alice, bob] = await usersOnDifferentShards(3);
		if (!owner || !alice || !bob) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Together");
		await share(owner, folder.id, [
			{ user: alice, role: "editor" },
			{ user: bob, role: "editor" },
		]);
		const mounts = new Map<string, string>([[owner.id, folder.id]]);
		for (const member of [alice, bob])
			mounts.set(member.id, mountIn(await journalUntil(member, (es) => es.some((e) => e.node.mount !== undefined))).id);
		// Two devices each, connected before the changes.
		const users = [owner, alice, bob];
		const devices = await Promise.all(users.flatMap((user) => [api.connect(user), api.connect(user)]));

		// Each user makes changes in the share, through their own view of it.
		const made: string[] = [];
		for (const [i, user] of users.entries()) {
			const parent = mounts.get(user.id) ?? "";
			made.push((await api.upload(user, parent, `from-${i}.txt`, `content ${i}`)).node.id);
			made.push((await api.mkdir(user, parent, `folder-${i}`)).id);
		}

		const inOwnerOrder = (await journalUntil(owner, (es) => made.every((id) => es.some((e) => e.node.id === id))))
			.filter((e) => made.includes(e.node.id))
			.map((e) => e.node.id);
		expect(inOwnerOrder).toHaveLength(made.length);
		for (const [u, user] of users.entries()) {
			const entries = await journalUntil(user, (es) => made.every((id) => es.some((e) => e.node.id === id)));
			// Exactly one entry per change, in the order the owner's hub made them.
			expect(entries.filter((e) => made.includes(e.node.id)).map((e) => e.node.id)).toEqual(inOwnerOrder);
			// Both devices are told up to the end of this journal.
			const latest = decodeJournalCursor(await api.latest(user))?.seq ?? 0;
			for (const device of [devices[2 * u], devices[2 * u + 1]]) {
				if (!device) throw new Error("unreachable");
				await device.socket.next(
					(f) => typeof f === "object" && f.type === "changes" && (decodeJournalCursor(f.cursor)?.seq ?? 0) >= latest,
				);
			}
		}
		for (const d of devices) d.socket.close();
	});
});

describe("revoking while an editor writes", () => {
	it("refuses the commit of a PUT whose body was still arriving when the editor was removed, and writes nothing", async () => {
		const [owner, editor] = await usersOnDifferentShards(2);
		if (!owner || !editor) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Drafts");
		const made = await share(owner, folder.id, [{ user: editor, role: "editor" }]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));

		// A body the test hands over in two parts: the first is read only once every check before the body passed.
		let pulled: () => void = () => undefined;
		const reading = new Promise<void>((resolve) => (pulled = resolve));
		let finish: (controller: ReadableStreamDefaultController<Uint8Array>) => void = () => undefined;
		const rest = new Promise<ReadableStreamDefaultController<Uint8Array>>((resolve) => (finish = resolve));
		let first = true;
		const body = new ReadableStream<Uint8Array>({
			async pull(controller) {
				if (first) {
					first = false;
					controller.enqueue(new TextEncoder().encode("half of "));
					pulled();
					return;
				}
				finish(controller);
				await new Promise(() => undefined);
			},
		});
		const ownerSeqBefore = decodeJournalCursor(await api.latest(owner))?.seq ?? 0;
		const putting = call(`/v1/files/content?parent_id=${mount.id}&name=late.txt`, { method: "PUT", token: editor.token, body });
		await reading;
		expect((await call(`/v1/shares/${made.id}/members/${editor.id}`, { method: "DELETE", token: owner.token })).status).toBe(204);
		const controller = await rest;
		controller.enqueue(new TextEncoder().encode("a file"));
		controller.close();
		await expectError(await putting, 404, "NOT_FOUND");
		// The revoke came first in the owner's hub: no file, no journal entry, no version.
		expect((await api.listAll(owner, folder.id)).map((n) => n.name)).toEqual([]);
		expect(decodeJournalCursor(await api.latest(owner))?.seq ?? 0).toBe(ownerSeqBefore);
	});
});

describe("copying across owners", () => {
	it("copies a shared file into the member's own tree and theirs into the share, without moving a byte", async () => {
		const [owner, viewer, editor] = await usersOnDifferentShards(3);
		if (!owner || !viewer || !editor) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Library");
		const original = await api.upload(owner, folder.id, "book.txt", "a long story");
		await share(owner, folder.id, [
			{ user: viewer, role: "viewer" },
			{ user: editor, role: "editor" },
		]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined));
		const objects = await blobCount();

		const mine = await expectJson<{ node: { id: string; name: string; parent_id: string } }>(
			await call(`/v1/nodes/${original.node.id}/copy`, {
				method: "POST",
				token: viewer.token,
				body: JSON.stringify({ parent_id: viewer.rootId }),
			}),
			201,
		);
		expect(mine.node.parent_id).toBe(viewer.rootId);
		expect(await api.text(viewer, mine.node.id)).toBe("a long story");
		// Into the share, by the editor, under a taken name: a numbered name, never an overwrite.
		const back = await expectJson<{ node: { name: string; parent_id: string } }>(
			await call(`/v1/nodes/${original.node.id}/copy`, {
				method: "POST",
				token: editor.token,
				body: JSON.stringify({ parent_id: mount.id }),
			}),
			201,
		);
		expect(back.node.parent_id).toBe(mount.id);
		expect(back.node.name).not.toBe("book.txt");
		expect(await api.text(owner, original.node.id)).toBe("a long story");
		expect(await blobCount()).toBe(objects);
		// A viewer cannot copy into the share.
		await expectError(
			await call(`/v1/nodes/${mine.node.id}/copy`, { method: "POST", token: viewer.token, body: JSON.stringify({ parent_id: folder.id }) }),
			403,
			"FORBIDDEN",
		);
	});
});

describe("an editor's trash and restore", () => {
	it("puts what an editor deletes in the owner's trash, lets the editor restore it, and shows paths through the mount", async () => {
		const [owner, editor, viewer] = await usersOnDifferentShards(3);
		if (!owner || !editor || !viewer) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Shared stuff");
		const sub = await api.mkdir(owner, folder.id, "deep");
		const file = await api.upload(owner, sub.id, "doc.txt", "text");
		await share(owner, folder.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined));

		// The path runs through the member's own tree and mount.
		const seen = await api.node(editor, file.node.id);
		expect(seen.path).toBe("/Shared stuff/deep/doc.txt");
		expect(seen.ancestors.map((a) => a.id)).toEqual([editor.rootId, mount.id, sub.id]);

		await expectError(await call(`/v1/nodes/${file.node.id}`, { method: "DELETE", token: viewer.token }), 403, "FORBIDDEN");
		expect((await call(`/v1/nodes/${file.node.id}`, { method: "DELETE", token: editor.token })).status).toBe(200);
		const trash = await expectJson<{ items: { id: string }[] }>(await call("/v1/trash", { token: owner.token }), 200);
		expect(trash.items.map((n) => n.id)).toContain(file.node.id);
		await journalUntil(viewer, (es) => es.some((e) => e.kind === "trashed" && e.node.id === file.node.id));
		// Deleting forever is the owner's.
		await expectError(await call(`/v1/nodes/${file.node.id}?permanent=true`, { method: "DELETE", token: editor.token }), 403, "FORBIDDEN");
		expect((await call(`/v1/nodes/${file.node.id}/restore`, { method: "POST", token: editor.token })).status).toBe(200);
		expect(await api.text(viewer, file.node.id)).toBe("text");
	});
});

describe("trashing above a share", () => {
	it("tells members the share is gone when the owner trashes a folder above it, and back when it is restored", async () => {
		const [owner, member] = await usersOnDifferentShards(2);
		if (!owner || !member) throw new Error("unreachable");
		const outer = await api.mkdir(owner, owner.rootId, "Work");
		const inner = await api.mkdir(owner, outer.id, "Team");
		await share(owner, inner.id, [{ user: member, role: "viewer" }]);
		const mount = mountIn(await journalUntil(member, (es) => es.some((e) => e.node.mount !== undefined)));
		expect((await call(`/v1/nodes/${outer.id}`, { method: "DELETE", token: owner.token })).status).toBe(200);
		await journalUntil(member, (es) => es.some((e) => e.kind === "deleted" && e.reason === "unshared" && e.node.id === mount.id));
		await expectError(await call(`/v1/nodes/${mount.id}/children`, { token: member.token }), 404, "NOT_FOUND");
		expect((await call(`/v1/nodes/${outer.id}/restore`, { method: "POST", token: owner.token })).status).toBe(200);
		await journalUntil(member, (es) => es.filter((e) => e.kind === "created" && e.node.id === mount.id).length === 2);
		expect(await api.listAll(member, mount.id)).toEqual([]);
	});
});

describe("ids a member may use", () => {
	it("moves inside a share by the owner's folder ids, and makes no public link to a mount", async () => {
		const [owner, editor] = await usersOnDifferentShards(2);
		if (!owner || !editor) throw new Error("unreachable");
		const folder = await api.mkdir(owner, owner.rootId, "Box");
		const sub = await api.mkdir(owner, folder.id, "inner");
		const file = await api.upload(owner, folder.id, "f.txt", "f");
		await share(owner, folder.id, [{ user: editor, role: "editor" }]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		const moved = await expectJson<{ parent_id: string }>(
			await call(`/v1/nodes/${file.node.id}`, { method: "PATCH", token: editor.token, body: JSON.stringify({ parent_id: sub.id }) }),
			200,
		);
		expect(moved.parent_id).toBe(sub.id);
		await expectError(
			await call("/v1/links", { method: "POST", token: editor.token, body: JSON.stringify({ node_id: mount.id, access: "view" }) }),
			403,
			"FORBIDDEN",
		);
	});
});

describe("an edit that names a file moved out of the share", () => {
	it("never reaches the owner's file outside the share: the stale edit lands in the share, the private file is untouched", async () => {
		const [owner, editor] = await usersOnDifferentShards(2);
		if (!owner || !editor) throw new Error("unreachable");
		const project = await api.mkdir(owner, owner.rootId, "Project");
		const privateDir = await api.mkdir(owner, owner.rootId, "Private");
		const plan = await api.upload(owner, project.id, "plan.txt", "shared v1");
		await share(owner, project.id, [{ user: editor, role: "editor" }]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		expect(
			(await expectJson(
				await call(`/v1/nodes/${plan.node.id}`, {
					method: "PATCH",
					token: owner.token,
					body: JSON.stringify({ parent_id: privateDir.id }),
				}),
				200,
			)) as object,
		).toBeTruthy();

		// An edit based on the version the editor saw, once the file left the share.
		const res = await call(`/v1/files/content?parent_id=${mount.id}&name=anything.txt`, {
			method: "PUT",
			token: editor.token,
			body: "written by the editor",
			headers: { "If-Match": `"${plan.version.id}"` },
		});
		const landed = await expectJson<{ node: { id: string; parent_id: string } }>(res, 201);
		expect(landed.node.parent_id).toBe(mount.id);
		expect(landed.node.id).not.toBe(plan.node.id);
		expect(await api.text(owner, plan.node.id)).toBe("shared v1");
		expect((await api.listAll(owner, privateDir.id)).map((n) => n.name)).toEqual(["plan.txt"]);

		// Trashed privately, it cannot be revived into the share by an edit either.
		await call(`/v1/nodes/${plan.node.id}`, { method: "DELETE", token: owner.token });
		const revive = await call(`/v1/files/content?parent_id=${mount.id}&name=stolen.txt`, {
			method: "PUT",
			token: editor.token,
			body: "x",
			headers: { "If-Match": `"${plan.version.id}"` },
		});
		expect((await expectJson<{ node: { id: string } }>(revive, 201)).node.id).not.toBe(plan.node.id);
		const trash = await expectJson<{ items: { id: string }[] }>(await call("/v1/trash", { token: owner.token }), 200);
		expect(trash.items.map((n) => n.id)).toContain(plan.node.id);
		await expectError(await call(`/v1/files/${plan.node.id}/versions`, { token: editor.token }), 404, "NOT_FOUND");
	});
});

describe("a public link beside a mount", () => {
	it("never lists a mount that its folder holds", async () => {
		const [owner, member] = await usersOnDifferentShards(2);
		if (!owner || !member) throw new Error("unreachable");
		const shared = await api.mkdir(owner, owner.rootId, "Shared");
		await share(owner, shared.id, [{ user: member, role: "viewer" }]);
		const mount = mountIn(await journalUntil(member, (es) => es.some((e) => e.node.mount !== undefined)));
		// The member's public folder gets the mount moved into it, next to a file of theirs.
		const pub = await api.mkdir(member, member.rootId, "Public");
		await api.upload(member, pub.id, "mine.txt", "mine");
		await expectJson(
			await call(`/v1/nodes/${mount.id}`, { method: "PATCH", token: member.token, body: JSON.stringify({ parent_id: pub.id }) }),
			200,
		);
		const link = await expectJson<{ token: string }>(
			await call("/v1/links", { method: "POST", token: member.token, body: JSON.stringify({ node_id: pub.id, access: "view" }) }),
			201,
		);
		const listed = await expectJson<{ items: { name: string }[] }>(await call(`/v1/l/${link.token}/nodes/${pub.id}/children`), 200);
		expect(listed.items.map((n) => n.name)).toEqual(["mine.txt"]);
	});
});

describe("editing a shared file by its id", () => {
	it("lets an editor upload a new version of a shared file, by its id or their mount's; a stale edit answers 409; a viewer 403", async () => {
		const [owner, editor, viewer] = await usersOnDifferentShards(3);
		if (!owner || !editor || !viewer) throw new Error("unreachable");
		const file = await api.upload(owner, owner.rootId, "budget.csv", "v1");
		await share(owner, file.node.id, [
			{ user: editor, role: "editor" },
			{ user: viewer, role: "viewer" },
		]);
		const mount = mountIn(await journalUntil(editor, (es) => es.some((e) => e.node.mount !== undefined)));
		await journalUntil(viewer, (es) => es.some((e) => e.node.mount !== undefined));
		const put = (user: { token: string }, id: string, body: string, ifMatch?: string) =>
			call(`/v1/files/${id}/content`, { method: "PUT", token: user.token, body, headers: ifMatch ? { "If-Match": `"${ifMatch}"` } : {} });

		const byMount = await expectJson<{ node: { id: string }; version: { id: string } }>(
			await put(editor, mount.id, "v2", file.version.id),
			200,
		);
		expect(byMount.node.id).toBe(mount.id);
		expect(await api.text(owner, file.node.id)).toBe("v2");
		const byId = await expectJson<{ version: { id: string } }>(await put(editor, file.node.id, "v3", byMount.version.id), 200);
		expect(await api.text(viewer, file.node.id)).toBe("v3");
		// A stale edit would leave a copy beside the file, outside the share: refused, nothing written.
		await expectError(await put(editor, file.node.id, "stale", file.version.id), 409, "VERSION_CONFLICT");
		expect((await api.listAll(owner, owner.rootId)).map((n) => n.name)).toEqual(["budget.csv"]);
		await expectError(await put(viewer, file.node.id, "nope"), 403, "FORBIDDEN");
		// The owner edits by id too.
		await expectJson(await put(owner, file.node.id, "v4", byId.version.id), 200);
		expect(await api.text(editor, mount.id)).toBe("v4");
	});
});
