import { describe, expect, it } from "vitest";
import { body, call, put, signup } from "./helpers";

describe("smoke", () => {
	it("signs up, uploads and downloads", async () => {
		const user = await signup();
		const res = await put(user, user.rootId, "hello.txt", "hello world");
		expect(res.status).toBe(201);
		const committed = await body(res);
		const got = await call(`/v1/files/${committed.node.id}/content`, { token: user.token });
		expect(got.status).toBe(200);
		expect(await got.text()).toBe("hello world");
	});
});
