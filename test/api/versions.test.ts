/**
 * Version history (docs/api.md, "Version history"): a file's versions, newest
 * first, and restoring one as a new head over the same blocks.
 */
import { describe, expect, it } from "vitest";
import { api, blobCount, call, expectError, expectJson, journal, randomBytes, sha256, signup, upload, type TestUser } from "./helpers";

interface VersionJson {
	id: string;
	node_id: string;
	size: number;
	content_hash: string;
	device_id: string | null;
}

async function versions(user: TestUser, fileId: string, query = ""): Promise<{ items: VersionJson[]; next_cursor: string | null }> {
	return expectJson(await call(`/v1/files/${fileId}/versions${query}`, { token: user.token }), 200);
}

function restore(user: TestUser, fileId: string, versionId: string): Promise<Response> {
	return call(`/v1/files/${fileId}/versions/${versionId}/restore`, { method: "POST", token: user.token });
}

async function bytesUsed(user: TestUser): Promise<number> {
	return (await expectJson<{ usage: { bytes_used: number } }>(await call("/v1/me", { token: user.token }), 200)).usage.bytes_used;
}

describe("version history", () => {
	it("lists a file's versions newest first, page by page", async () => {
		const user = await signup();
		const made = [await upload(user, user.rootId, "notes.txt", "one")];
		for (const text of ["two", "three", "four"]) made.push(await upload(user, user.rootId, "notes.txt", text, 200));
		const all = await versions(user, made[0]?.node.id ?? "");
		expect(all.items.map((v) => v.id)).toEqual(made.map((m) => m.version.id).reverse());
		expect(all.items[0]).toMatchObject({ size: 4, content_hash: await sha256(new TextEncoder().encode("four")), device_id: user.deviceId });
		const seen: string[] = [];
		let cursor: string | null = null;
		do {
			const page = await versions(user, made[0]?.node.id ?? "", `?limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
			seen.push(...page.items.map((v) => v.id));
			cursor = page.next_cursor;
		} while (cursor !== null);
		expect(seen).toEqual(all.items.map((v) => v.id));
	});

	it("restores an earlier version as a new head over the same blocks: byte-exact, no object written, counted, journaled", async () => {
		const user = await signup();
		const old = randomBytes(300_000, 91);
		const first = await upload(user, user.rootId, "report.bin", old);
		await upload(user, user.rootId, "report.bin", randomBytes(1000, 92), 200);
		const objects = await blobCount();
		const used = await bytesUsed(user);
		const restored = await expectJson<{ node: { id: string; content_hash: string; size: number }; version: VersionJson; conflict: null }>(
			await restore(user, first.node.id, first.version.id),
			201,
		);
		expect(restored.version.id).not.toBe(first.version.id);
		expect(restored.node).toMatchObject({ id: first.node.id, size: old.length, content_hash: first.version.content_hash });
		expect(restored.conflict).toBeNull();
		expect((await api.download(user, first.node.id)).bytes).toEqual(old);
		expect(await blobCount()).toBe(objects);
		expect(await bytesUsed(user)).toBe(used + old.length);
		expect((await versions(user, first.node.id)).items.map((v) => v.id)[0]).toBe(restored.version.id);
		const last = (await journal(user.id)).at(-1);
		expect(last).toMatchObject({ kind: "updated", node_id: first.node.id });
		// Restoring the head again changes nothing.
		const again = await expectJson<{ version: VersionJson }>(await restore(user, first.node.id, restored.version.id), 200);
		expect(again.version.id).toBe(restored.version.id);
		expect((await journal(user.id)).at(-1)?.seq).toBe(last?.seq);
	});

	it("answers 404 for a version of another file or user, a folder, and a file in the trash, and changes nothing", async () => {
		const user = await signup();
		const a = await upload(user, user.rootId, "a.txt", "a1");
		await upload(user, user.rootId, "a.txt", "a2", 200);
		const b = await upload(user, user.rootId, "b.txt", "b1");
		await expectError(await restore(user, a.node.id, b.version.id), 404, "NOT_FOUND");
		await expectError(await restore(user, user.rootId, a.version.id), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${user.rootId}/versions`, { token: user.token }), 404, "NOT_FOUND");
		const other = await signup();
		await expectError(await restore(other, a.node.id, a.version.id), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${a.node.id}/versions`, { token: other.token }), 404, "NOT_FOUND");
		await expectError(await call(`/v1/files/${a.node.id}/versions?cursor=garbage`, { token: user.token }), 400, "INVALID_REQUEST");
		expect((await call(`/v1/nodes/${a.node.id}`, { method: "DELETE", token: user.token })).ok).toBe(true);
		await expectError(await restore(user, a.node.id, a.version.id), 404, "NOT_FOUND");
		expect((await versions(user, a.node.id)).items).toHaveLength(2);
	});
});
