import { describe, expect, it } from "vitest";
import { body, call, randomBytes, sha256, signup } from "./helpers";

const b64 = (s: string) => btoa(s);

describe("tus smoke", () => {
	it("creates, patches in pieces, resumes and commits", async () => {
		const user = await signup();
		const data = randomBytes(6 * 1024 * 1024 + 123, 9);
		const opts = await call("/v1/tus", { method: "OPTIONS" });
		expect(opts.headers.get("Tus-Extension")).toContain("creation");
		const create = await call("/v1/tus", {
			method: "POST",
			token: user.token,
			headers: {
				"Tus-Resumable": "1.0.0",
				"Upload-Length": String(data.length),
				"Upload-Metadata": `filename ${b64("t.bin")},parent_id ${b64(user.rootId)}`,
			},
		});
		expect(create.status).toBe(201);
		const location = new URL(create.headers.get("Location") ?? "").pathname;
		let offset = 0;
		for (const size of [1_000_000, 2_500_000, data.length]) {
			const end = Math.min(size + offset, data.length);
			const res = await call(location, {
				method: "PATCH",
				token: user.token,
				headers: { "Tus-Resumable": "1.0.0", "Upload-Offset": String(offset), "Content-Type": "application/offset+octet-stream" },
				body: data.slice(offset, end),
			});
			expect(res.status).toBe(204);
			offset = Number(res.headers.get("Upload-Offset"));
			if (offset === data.length) break;
		}
		const head = await call(location, { method: "HEAD", token: user.token, headers: { "Tus-Resumable": "1.0.0" } });
		expect(head.status, await head.text()).toBe(200);
		expect(head.headers.get("Upload-Offset")).toBe(String(data.length));
		const nodeId = head.headers.get("Drive-Node-Id");
		expect(nodeId).toBeTruthy();
		const node = await body(await call(`/v1/nodes/${nodeId}`, { token: user.token }));
		expect(node.content_hash).toBe(await sha256(data));
		const got = new Uint8Array(await (await call(`/v1/files/${nodeId}/content`, { token: user.token })).arrayBuffer());
		expect(await sha256(got)).toBe(await sha256(data));
	});
});
