/// <reference types="node" />
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { describe, expect, it } from "vitest";
import { readCredentials, writeCredentials, type Credentials } from "./credentials";
import { CliError, EXIT } from "./output";
import { Tokens, withRefreshLock } from "./tokens";

const credentials: Credentials = {
	server: "http://127.0.0.1:1",
	email: "a@example.com",
	user_id: "usr_1",
	device_id: "dev_1",
	refresh_token: "r1",
	access_token: "a1",
	access_expires_at: 0,
};

describe("the refresh lock", () => {
	it("keeps a second process out while one holds it", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "drive-lock-")), "drive");
		await withRefreshLock(dir, async () => {
			// Another connection is another process as far as SQLite's file locks go.
			const other = new DatabaseSync(join(dir, "auth.db"), { timeout: 0 });
			expect(() => other.exec("BEGIN IMMEDIATE")).toThrow(/locked|busy/i);
			other.close();
		});
		const after = new DatabaseSync(join(dir, "auth.db"), { timeout: 0 });
		after.exec("BEGIN IMMEDIATE");
		after.exec("COMMIT");
		after.close();
	});

	it("lets a second holder in only after the first leaves, and keeps the event loop running while it waits", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "drive-lock-")), "drive");
		const order: string[] = [];
		const first = gate();
		const inFirst = gate();
		const one = withRefreshLock(dir, async () => {
			order.push("1 in");
			inFirst.open();
			await first.opened;
			order.push("1 out");
		});
		await inFirst.opened;
		// The second connection's first try fails inside this call; it then waits without blocking the loop.
		const two = withRefreshLock(dir, async () => {
			order.push("2 in");
		});
		// setImmediate callbacks only run while the event loop turns: a synchronous busy wait would stop them.
		let turns = 0;
		await new Promise<void>((resolve) => {
			const turn = (): void => {
				if (++turns === 100) resolve();
				else setImmediate(turn);
			};
			setImmediate(turn);
		});
		expect(order).toEqual(["1 in"]);
		first.open();
		await Promise.all([one, two]);
		expect(order).toEqual(["1 in", "1 out", "2 in"]);
	});

	it("gives up with the unavailable exit code when the lock stays held past the wait", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "drive-lock-")), "drive");
		const release = gate();
		const inside = gate();
		const holder = withRefreshLock(dir, async () => {
			inside.open();
			await release.opened;
		});
		await inside.opened;
		let entered = false;
		const error = await withRefreshLock(
			dir,
			async () => {
				entered = true;
			},
			20,
		).catch((err: unknown) => err);
		expect(error).toBeInstanceOf(CliError);
		expect((error as CliError).exit).toBe(EXIT.unavailable);
		expect(entered).toBe(false);
		release.open();
		await holder;
		// The failed waiter left nothing behind: the lock is free again.
		await withRefreshLock(dir, async () => {}, 0);
	});

	it("uses the token another process refreshed instead of refreshing again", async () => {
		const dir = join(mkdtempSync(join(tmpdir(), "drive-lock-")), "drive");
		writeCredentials(dir, credentials);
		const tokens = new Tokens(dir, credentials);
		// Meanwhile another process refreshed: its pair is on disk.
		writeCredentials(dir, { ...credentials, refresh_token: "r2", access_token: "a2", access_expires_at: Date.now() + 900_000 });
		// The server at port 1 is unreachable: a refresh would fail, so this proves none is attempted.
		expect(await tokens.current()).toBe("a2");
		expect(tokens.credentials.refresh_token).toBe("r2");
	});
});

describe("Tokens", () => {
	it("refreshes once for requests that find the token expired at the same time", async () => {
		let refreshes = 0;
		const server = createServer((req, res) => {
			if (req.url === "/v1/auth/refresh") {
				refreshes++;
				res.writeHead(200, { "Content-Type": "application/json" });
				res.end(JSON.stringify({ access_token: `a${refreshes + 1}`, refresh_token: `r${refreshes + 1}`, expires_in: 900 }));
				return;
			}
			res.writeHead(req.headers.authorization === "Bearer a2" ? 200 : 401);
			res.end("{}");
		});
		await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
		try {
			const address = server.address() as AddressInfo;
			const dir = join(mkdtempSync(join(tmpdir(), "drive-tokens-")), "drive");
			const stored = { ...credentials, server: `http://127.0.0.1:${address.port}` };
			writeCredentials(dir, stored);
			const tokens = new Tokens(dir, stored);
			const answers = await Promise.all([1, 2, 3, 4].map(() => tokens.fetch(`${stored.server}/v1/me`, { method: "GET" })));
			expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200]);
			expect(refreshes).toBe(1);
			expect(readCredentials(dir)).toMatchObject({ access_token: "a2", refresh_token: "r2" });
		} finally {
			server.close();
		}
	});
});

describe("credentials.json", () => {
	it("is written with mode 0600 in a 0700 directory and read back", () => {
		const dir = join(mkdtempSync(join(tmpdir(), "drive-creds-")), "drive");
		writeCredentials(dir, credentials);
		expect(statSync(dir).mode & 0o777).toBe(0o700);
		expect(statSync(join(dir, "credentials.json")).mode & 0o777).toBe(0o600);
		expect(readCredentials(dir)).toEqual(credentials);
		expect(readFileSync(join(dir, "credentials.json"), "utf8")).not.toContain("password");
	});
});

/** A promise that settles when {@link open} is called. */
function gate(): { opened: Promise<void>; open: () => void } {
	let open = (): void => {};
	const opened = new Promise<void>((resolve) => {
		open = resolve;
	});
	return { opened, open };
}
