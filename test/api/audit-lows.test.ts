/**
 * Regression tests for the audit's low findings fixed in the api and the hub
 * (../shared/notes/audit.md: L1, L2, L8, L12, L16), each named after its finding.
 */
import { describe, expect, it } from "vitest";
import { MAX_FOLDER_DEPTH } from "../../src/shared/limits";
import { call, expectError, expectJson, mkdir, put, randomBytes, sha256, shardOfUser, signup, upload, type TestUser } from "./helpers";

/** Writes a chain of `levels` nested folders under the root straight to the shard (building it by hand takes one request per level); returns the deepest. */
async function nest(user: TestUser, levels: number): Promise<string> {
	const db = await shardOfUser(user.id);
	const now = new Date().toISOString();
	const ids = Array.from({ length: levels }, (_, i) => `nod_deep${String(i).padStart(19, "0")}${user.id.slice(-4)}`);
	await db.batch(
		ids.map((id, i) =>
			db
				.prepare(
					"INSERT INTO nodes (id, user_id, parent_id, type, name, name_key, size, created_at, modified_at) VALUES (?, ?, ?, 'folder', ?, ?, 0, ?, ?)",
				)
				.bind(id, user.id, i === 0 ? user.rootId : ids[i - 1], `d${i}`, `d${i}`, now, now),
		),
	);
	return ids[levels - 1] as string;
}

describe("low findings", () => {
	it("L1: committing a session twice answers the same conflict both times", async () => {
		const user = await signup();
		const first = await upload(user, user.rootId, "report.txt", "v1");
		await upload(user, user.rootId, "report.txt", "v2", 200);
		const data = randomBytes(100, 41);
		const hash = await sha256(data);
		const session = await expectJson<{ upload_id: string }>(
			await call("/v1/uploads", {
				method: "POST",
				token: user.token,
				body: JSON.stringify({
					parent_id: user.rootId,
					name: "report.txt",
					size: 100,
					blocks: [{ hash, size: 100 }],
					base_version_id: first.version.id,
				}),
			}),
			201,
		);
		expect((await call(`/v1/uploads/${session.upload_id}/blocks/${hash}`, { method: "PUT", token: user.token, body: data })).status).toBe(
			204,
		);
		const commit = () => call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: user.token, body: "{}" });
		const once = await expectJson<{ conflict: unknown; node: { id: string } }>(await commit(), 201);
		const twice = await expectJson<{ conflict: unknown; node: { id: string } }>(await commit(), 201);
		expect(once.conflict).toEqual({ node_id: first.node.id, reason: "stale_base" });
		expect(twice).toEqual(once);
	});

	it(`L8: folders nest at most ${MAX_FOLDER_DEPTH} levels deep, for new folders and for moves`, async () => {
		const user = await signup();
		const deepest = await nest(user, MAX_FOLDER_DEPTH);
		const tooDeep = await call("/v1/folders", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ parent_id: deepest, name: "one more" }),
		});
		await expectError(tooDeep, 400, "INVALID_REQUEST");
		// A file may still live at the deepest level, and the path reads fine.
		const file = await upload(user, deepest, "leaf.txt", "leaf");
		const node = await expectJson<{ path: string }>(await call(`/v1/nodes/${file.node.id}`, { token: user.token }), 200);
		expect(node.path.split("/")).toHaveLength(MAX_FOLDER_DEPTH + 2);
		// Moving a two-level folder under the level just above the deepest would nest one too deep.
		const a = await mkdir(user, user.rootId, "a");
		await mkdir(user, a.id, "b");
		const parentOfDeepest = (await expectJson<{ parent_id: string }>(await call(`/v1/nodes/${deepest}`, { token: user.token }), 200))
			.parent_id;
		const move = await call(`/v1/nodes/${a.id}`, {
			method: "PATCH",
			token: user.token,
			body: JSON.stringify({ parent_id: parentOfDeepest }),
		});
		await expectError(move, 400, "INVALID_REQUEST");
		const shallower = await call(`/v1/nodes/${a.id}`, {
			method: "PATCH",
			token: user.token,
			body: JSON.stringify({ parent_id: user.rootId, name: "a2" }),
		});
		await expectJson(shallower, 200);
	});

	it("L8: a folder moved deeper after the hub remembered its depth still gets no child past the limit", async () => {
		const user = await signup();
		const upper = await nest(user, MAX_FOLDER_DEPTH - 1);
		// Created by the hub, which remembers its depth for the creations that follow.
		const moved = await mkdir(user, user.rootId, "moved");
		await expectJson(
			await call(`/v1/nodes/${moved.id}`, { method: "PATCH", token: user.token, body: JSON.stringify({ parent_id: upper }) }),
			200,
		);
		const child = await call("/v1/folders", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ parent_id: moved.id, name: "one more" }),
		});
		await expectError(child, 400, "INVALID_REQUEST");
	});

	it("L12: an If-Match that lists several versions is refused, not read as one unknown version", async () => {
		const user = await signup();
		const first = await upload(user, user.rootId, "doc.txt", "v1");
		const second = await upload(user, user.rootId, "doc.txt", "v2", 200);
		const res = await put(user, user.rootId, "doc.txt", "v3", { "If-Match": `"${second.version.id}", "${first.version.id}"` });
		await expectError(res, 400, "INVALID_REQUEST");
		const children = await expectJson<{ items: unknown[] }>(await call(`/v1/nodes/${user.rootId}/children`, { token: user.token }), 200);
		expect(children.items).toHaveLength(1);
	});

	it("L16: CONIN$ and CONOUT$ are reserved on Windows and refused as names", async () => {
		const user = await signup();
		for (const name of ["CONIN$", "conout$.txt"]) {
			const res = await call("/v1/folders", { method: "POST", token: user.token, body: JSON.stringify({ parent_id: user.rootId, name }) });
			await expectError(res, 400, "INVALID_REQUEST");
		}
	});

	it("L2: a retried edit whose answer was lost answers the version that landed, not a conflicted copy of itself", async () => {
		const user = await signup();
		const base = await upload(user, user.rootId, "draft.txt", "v1");
		const edit = await upload(user, user.rootId, "draft.txt", "v2", 200, { "If-Match": base.version.id });
		// The same request again, as a client sends it when the first answer never came.
		const retried = await upload(user, user.rootId, "draft.txt", "v2", 200, { "If-Match": base.version.id });
		expect(retried.version.id).toBe(edit.version.id);
		expect(retried.conflict).toBeNull();
		const names = (
			await expectJson<{ items: { name: string }[] }>(await call(`/v1/nodes/${user.rootId}/children`, { token: user.token }), 200)
		).items;
		expect(names.map((n) => n.name)).toEqual(["draft.txt"]);
		// Other content from the same base is a real conflict.
		const other = await upload(user, user.rootId, "draft.txt", "v2 but different", 201, { "If-Match": base.version.id });
		expect(other.conflict).not.toBeNull();
	});
});
