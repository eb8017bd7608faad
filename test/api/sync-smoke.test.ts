import { describe, expect, it } from "vitest";
import { body, call, put, signup } from "./helpers";

describe("sync smoke", () => {
	it("journals, long-polls and pushes over a WebSocket", async () => {
		const user = await signup();
		const latest = await body(await call("/v1/changes/latest", { token: user.token }));
		const ticket = await body(await call("/v1/sync/ticket", { method: "POST", token: user.token }));
		const res = await call(`/v1/sync/ws?ticket=${encodeURIComponent(ticket.ticket)}`, { headers: { Upgrade: "websocket" } });
		expect(res.status).toBe(101);
		const ws = res.webSocket;
		if (!ws) throw new Error("no socket");
		const frames: unknown[] = [];
		ws.accept();
		ws.addEventListener("message", (e) => {
			frames.push(JSON.parse(e.data as string));
		});
		const poll = call(`/v1/changes/longpoll?cursor=${latest.cursor}&timeout=30`, { token: user.token });
		await new Promise((r) => setTimeout(r, 50));
		const t0 = Date.now();
		expect((await put(user, user.rootId, "a.txt", "x")).status).toBe(201);
		const polled = await body(await poll);
		expect(polled.changes).toBe(true);
		expect(Date.now() - t0).toBeLessThan(1000);
		const changes = await body(await call(`/v1/changes?cursor=${latest.cursor}`, { token: user.token }));
		expect(changes.entries.map((e: { kind: string }) => e.kind)).toEqual(["created"]);
		await new Promise((r) => setTimeout(r, 300));
		expect(frames[0]).toMatchObject({ type: "hello" });
		expect(frames.at(-1)).toMatchObject({ type: "changes", cursor: changes.cursor });
		const again = await call(`/v1/sync/ws?ticket=${encodeURIComponent(ticket.ticket)}`, { headers: { Upgrade: "websocket" } });
		expect(again.status).toBe(401);
		ws.close(1000, "bye");
	});
});
