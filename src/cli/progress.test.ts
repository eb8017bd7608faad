/// <reference types="node" />
import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { Progress } from "./progress";

/** A stderr stand-in that records writes and claims to be a terminal (or not). */
function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; writes: string[] } {
	const writes: string[] = [];
	const stream = new Writable({
		write(chunk: Buffer, _encoding, done) {
			writes.push(chunk.toString());
			done();
		},
	}) as unknown as NodeJS.WriteStream;
	Object.assign(stream, { isTTY, cursorTo: () => true, clearLine: () => true });
	return { stream, writes };
}

describe("Progress", () => {
	it("redraws the live line at most ten times a second on a terminal", () => {
		const { stream, writes } = fakeStream(true);
		let now = 0;
		const progress = new Progress("tty", "get", stream, () => now);
		for (let i = 1; i <= 100; i++) {
			now += 10; // 100 updates over one second
			progress.update({ filesTotal: 1, bytesTotal: 1000, bytesDone: i * 10 });
		}
		const lines = writes.filter((w) => w.startsWith("get:"));
		expect(lines.length).toBeLessThanOrEqual(10);
		expect(lines.every((l) => !l.endsWith("\n"))).toBe(true);
		progress.done({ filesDone: 1 });
		expect(writes[writes.length - 1]).toMatch(/^get: 1\/1 files, 1\.0 kB\/1\.0 kB, .*\n$/);
	});

	it("prints plain lines once a second when not a terminal", () => {
		const { stream, writes } = fakeStream(false);
		let now = 0;
		const progress = new Progress("plain", "put", stream, () => now);
		for (let i = 1; i <= 30; i++) {
			now += 100;
			progress.update({ filesTotal: 1, bytesTotal: 3_000_000, bytesDone: i * 100_000 });
		}
		expect(writes).toHaveLength(3);
		expect(writes.every((w) => w.endsWith("\n"))).toBe(true);
		expect(writes[0]).toContain("left");
	});

	it("writes NDJSON events with --json", () => {
		const { stream, writes } = fakeStream(false);
		let now = 0;
		const progress = new Progress("json", "get", stream, () => now);
		now = 2000;
		progress.update({ filesTotal: 1, bytesTotal: 4000, bytesDone: 1000 });
		progress.done({ filesDone: 1, bytesDone: 4000 });
		const events = writes.map((w) => JSON.parse(w) as Record<string, unknown>);
		expect(events[0]).toEqual({
			type: "progress",
			label: "get",
			files_done: 0,
			files_total: 1,
			bytes_done: 1000,
			bytes_total: 4000,
			bytes_per_second: 500,
			seconds_left: 6,
		});
		expect(events[1]).toMatchObject({ type: "done", files_done: 1, bytes_done: 4000 });
	});

	it("prints nothing when quiet", () => {
		const { stream, writes } = fakeStream(false);
		const progress = new Progress("quiet", "get", stream);
		progress.update({ bytesDone: 1 });
		progress.done();
		expect(writes).toEqual([]);
	});
});
