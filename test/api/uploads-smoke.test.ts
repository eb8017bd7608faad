import { describe, expect, it } from "vitest";
import { chunkBoundaries } from "../../src/shared/chunking";
import { body, call, randomBytes, sha256, signup } from "./helpers";

describe("upload sessions smoke", () => {
	it("uploads only missing blocks and commits", async () => {
		const user = await signup();
		const data = randomBytes(5 * 1024 * 1024, 7);
		const sizes = chunkBoundaries(data);
		const blocks: { hash: string; size: number; bytes: Uint8Array }[] = [];
		let off = 0;
		for (const size of sizes) {
			const bytes = data.subarray(off, off + size);
			blocks.push({ hash: await sha256(bytes), size, bytes });
			off += size;
		}
		const create = await call("/v1/uploads", {
			method: "POST",
			token: user.token,
			body: JSON.stringify({ parent_id: user.rootId, name: "s.bin", size: data.length, blocks: blocks.map(({ hash, size }) => ({ hash, size })) }),
		});
		expect(create.status).toBe(201);
		const session = await body(create);
		expect(session.missing.length).toBe(new Set(blocks.map((b) => b.hash)).size);
		const early = await call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: user.token, body: "{}" });
		expect(early.status).toBe(409);
		expect((await body(early)).error.code).toBe("MISSING_BLOCKS");
		for (const b of blocks) {
			const res = await call(`/v1/uploads/${session.upload_id}/blocks/${b.hash}`, { method: "PUT", token: user.token, body: b.bytes });
			expect(res.status).toBe(204);
		}
		const status = await body(await call(`/v1/uploads/${session.upload_id}`, { token: user.token }));
		expect(status.missing).toEqual([]);
		const commit = await call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: user.token, body: "{}" });
		expect(commit.status).toBe(201);
		const result = await body(commit);
		expect(result.node.content_hash).toBe(await sha256(data));
		const again = await call(`/v1/uploads/${session.upload_id}/commit`, { method: "POST", token: user.token, body: "{}" });
		expect(again.status).toBe(201);
		expect((await body(again)).version.id).toBe(result.version.id);
		const got = new Uint8Array(await (await call(`/v1/files/${result.node.id}/content`, { token: user.token })).arrayBuffer());
		expect(await sha256(got)).toBe(await sha256(data));
		const second = await body(
			await call("/v1/uploads", {
				method: "POST",
				token: user.token,
				body: JSON.stringify({ parent_id: user.rootId, name: "s2.bin", size: data.length, blocks: blocks.map(({ hash, size }) => ({ hash, size })) }),
			}),
		);
		expect(second.missing).toEqual([]);
		const other = await signup();
		const third = await body(
			await call("/v1/uploads", {
				method: "POST",
				token: other.token,
				body: JSON.stringify({ parent_id: other.rootId, name: "s.bin", size: data.length, blocks: blocks.map(({ hash, size }) => ({ hash, size })) }),
			}),
		);
		expect(third.missing.length).toBe(blocks.length);
	});
});
