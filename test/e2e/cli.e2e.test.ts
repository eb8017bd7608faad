/**
 * The `drive` command against the running stack: each test spawns the real
 * CLI (bin/drive.mjs, which bundles src/cli) as a child process with a
 * config directory of its own, and reads its stdout, stderr and exit code.
 */
import { readFileSync, statSync, writeFileSync, existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import { HANG_GUARD_MS, PASSWORD, type CommitResult, type Node, type TestUser } from "../support/harness";
import { drive, envelope, freshDir, json } from "../support/cli";
import { generate, stackHarness } from "../support/stack";

const h = stackHarness();
/** A new account, signed in with the CLI in a config directory of its own. */
async function signedInUser(): Promise<{ user: TestUser; config: string; work: string }> {
	const user = await h.signup("cli test");
	const config = join(freshDir("config"), "drive");
	await json(config, ["login", "--email", user.email, "--password-stdin", "--device", "cli e2e"], `${PASSWORD}\n`);
	return { user, config, work: freshDir("work") };
}

beforeAll(async () => {
	// The first run bundles src/cli; do it once before tests that run the CLI side by side.
	const run = await drive(freshDir("build"), ["--version"]);
	expect(run.code, run.stderr).toBe(0);
}, HANG_GUARD_MS);

describe("drive login, whoami and logout", () => {
	it("keeps credentials without the password in a 0600 file in a 0700 directory", async () => {
		const { user, config } = await signedInUser();
		const me = await json<{ user: { email: string }; server: string }>(config, ["whoami"]);
		expect(me.user.email).toBe(user.email);
		expect(me.server).toBe(inject("baseUrl"));
		expect(statSync(config).mode & 0o777).toBe(0o700);
		const file = join(config, "credentials.json");
		expect(statSync(file).mode & 0o777).toBe(0o600);
		const stored = readFileSync(file, "utf8");
		expect(stored).not.toContain(PASSWORD);
		expect(JSON.parse(stored)).toMatchObject({ email: user.email, server: inject("baseUrl") });

		expect(await json(config, ["logout"])).toEqual({ signed_out: true });
		const after = await drive(config, ["whoami", "--json"]);
		expect(after.code).toBe(3);
		expect(envelope(after).error.code).toBe("UNAUTHENTICATED");
	});

	it("exits 3 with the error envelope when never signed in, and 2 on a usage error", async () => {
		const config = freshDir("nobody");
		const run = await drive(config, ["ls", "--json"]);
		expect(run.code).toBe(3);
		expect(envelope(run).error.code).toBe("UNAUTHENTICATED");
		const plain = await drive(config, ["ls"]);
		expect(plain.code).toBe(3);
		expect(plain.stderr).toContain("drive login");
		const usage = await drive(config, ["mv", "only-one", "--json"]);
		expect(usage.code).toBe(2);
		expect(envelope(usage).error.code).toBe("USAGE");
		const help = await drive(config, ["--help"]);
		expect(help.code).toBe(0);
		expect(help.stdout).toContain("Exit codes:");
	});

	it("refuses a wrong password with exit 3 and writes no credentials", async () => {
		const user = await h.signup("cli test");
		const config = join(freshDir("config"), "drive");
		const run = await drive(config, ["login", "--email", user.email, "--password-stdin", "--json"], "wrong password\n");
		expect(run.code).toBe(3);
		expect(existsSync(join(config, "credentials.json"))).toBe(false);
	});
});

describe("drive file commands", () => {
	it("makes folders, puts, lists, gets the same bytes, moves, trashes and restores", async () => {
		const { config, work } = await signedInUser();
		const data = generate(2_500_000, "cli-put");
		const local = join(work, "Report.bin");
		writeFileSync(local, data);

		const docs = await json<Node>(config, ["mkdir", "/Docs"]);
		expect(docs).toMatchObject({ type: "folder", name: "Docs" });
		const nested = await json<Node>(config, ["mkdir", "-p", "/Docs/2026/Q4"]);
		expect(nested.name).toBe("Q4");

		const put = await json<{ node: Node; bytes_sent: number; resumed: boolean }>(config, ["put", local, "/docs"]);
		expect(put.node).toMatchObject({ name: "Report.bin", size: data.length, parent_id: docs.id });
		expect(put.bytes_sent).toBe(data.length);
		// The same bytes again: every block is already stored, nothing is sent.
		const again = await json<{ bytes_sent: number }>(config, ["put", local, "/Docs"]);
		expect(again.bytes_sent).toBe(0);

		const listing = await json<{ node: Node; items: Node[] }>(config, ["ls", "/Docs"]);
		expect(listing.node.id).toBe(docs.id);
		expect(listing.items.map((n) => n.name)).toEqual(["2026", "Report.bin"]);

		const got = await json<{ path: string; bytes: number }>(config, ["get", "/DOCS/report.bin", join(work, "copy.bin")]);
		expect(got.bytes).toBe(data.length);
		expect(readFileSync(join(work, "copy.bin")).equals(data)).toBe(true);
		// A directory as the target gets the file's name.
		await json(config, ["get", put.node.id, work]);
		expect(readFileSync(join(work, "Report.bin")).equals(data)).toBe(true);

		const renamed = await json<Node>(config, ["mv", "/Docs/Report.bin", "/Docs/Final.bin"]);
		expect(renamed).toMatchObject({ id: put.node.id, name: "Final.bin", parent_id: docs.id });
		const moved = await json<Node>(config, ["mv", "/Docs/Final.bin", "/Docs/2026"]);
		expect(moved.parent_id).not.toBe(docs.id);

		const removed = await json<{ items: Node[] }>(config, ["rm", "/Docs/2026/Final.bin"]);
		expect(removed.items[0]).toMatchObject({ id: put.node.id, trashed: true });
		const trash = await json<{ items: Node[] }>(config, ["trash"]);
		expect(trash.items.map((n) => n.id)).toContain(put.node.id);
		const gone = await drive(config, ["ls", "/Docs/2026/Final.bin", "--json"]);
		expect(gone.code).toBe(4);
		expect(envelope(gone).error.code).toBe("NOT_FOUND");

		const restored = await json<{ items: Node[] }>(config, ["restore", "final.bin"]);
		expect(restored.items[0]).toMatchObject({ id: put.node.id, trashed: false });
		expect((await json<{ items: Node[] }>(config, ["ls", "/Docs/2026"])).items.map((n) => n.name)).toContain("Final.bin");

		const taken = await drive(config, ["mkdir", "/docs", "--json"]);
		expect(taken.code).toBe(5);
		expect(envelope(taken).error.code).toBe("NAME_TAKEN");
		const missingLocal = await drive(config, ["put", join(work, "nope.bin"), "/", "--json"]);
		expect(missingLocal.code).toBe(4);
	});

	it("lists versions and restores one, and makes and lists links and shares", async () => {
		const { config, work } = await signedInUser();
		const friend = await h.signup("friend");
		const local = join(work, "notes.txt");
		writeFileSync(local, "first\n");
		const first = await json<{ node: Node; version: { id: string } }>(config, ["put", local]);
		writeFileSync(local, "second version\n");
		await json(config, ["put", local]);
		const versions = await json<{ items: { id: string; is_head: boolean }[] }>(config, ["versions", "/notes.txt"]);
		expect(versions.items).toHaveLength(2);
		await json(config, ["versions", "restore", "/notes.txt", first.version.id]);
		await json(config, ["get", "/notes.txt", join(work, "back.txt")]);
		expect(readFileSync(join(work, "back.txt"), "utf8")).toBe("first\n");

		const link = await json<{ url: string; id: string }>(config, ["share", "link", "/notes.txt"]);
		expect(link.url).toContain("/v1/l/");
		const links = await json<{ items: { id: string }[] }>(config, ["share", "links", "/notes.txt"]);
		expect(links.items.map((l) => l.id)).toEqual([link.id]);

		await json(config, ["mkdir", "/Team"]);
		const share = await json<{ members: { user: { email: string }; role: string }[] }>(config, [
			"share",
			"add",
			"/Team",
			friend.email,
			"--role",
			"editor",
		]);
		expect(share.members).toEqual([expect.objectContaining({ user: expect.objectContaining({ email: friend.email }), role: "editor" })]);
		expect((await json<{ items: unknown[] }>(config, ["share", "list"])).items).toHaveLength(1);
	});
});

describe("drive conflicts", () => {
	it("lists conflicted copies and resolves one", async () => {
		const { user, config } = await signedInUser();
		const put = (body: string, ifMatch?: string) =>
			h.call<CommitResult>(`/v1/files/content?parent_id=${user.rootId}&name=doc.txt`, {
				method: "PUT",
				token: user.token,
				body,
				headers: ifMatch === undefined ? {} : { "If-Match": ifMatch },
			});
		const base = (await put("v1")).body.version.id;
		await put("v2 here", base);
		const copy = (await put("v2 there", base)).body;
		expect(copy.conflict).not.toBeNull();

		const list = await json<{ items: { node: Node; conflicts_with: Node | null }[] }>(config, ["conflicts"]);
		expect(list.items.map((c) => c.node.id)).toEqual([copy.node.id]);
		expect(list.items[0]?.conflicts_with?.name).toBe("doc.txt");
		const kept = await json<Node>(config, ["conflicts", "resolve", copy.node.id, "--keep", "original"]);
		expect(kept.name).toBe("doc.txt");
		expect((await json<{ items: unknown[] }>(config, ["conflicts"])).items).toEqual([]);
	});
});

describe("drive put resumes", () => {
	it("resumes the upload session a crashed run left, sending only what the server lacks", async () => {
		const { config, work } = await signedInUser();
		// Two batches of blocks (16 MiB each): the crash comes once the first is acknowledged.
		const data = generate(24_000_000, "cli-put-resume");
		const local = join(work, "video.bin");
		writeFileSync(local, data);
		const crashed = await drive(config, ["put", local, "--json"], "", { DRIVE_TEST_CRASH_AFTER_BYTES: "1" });
		expect(crashed.code, crashed.stderr).toBe(70);
		const saved = JSON.parse(readFileSync(join(config, "uploads.json"), "utf8")) as Record<string, { upload_id: string }>;
		expect(Object.values(saved)).toHaveLength(1);

		const resumed = await json<{ node: Node; resumed: boolean; bytes_sent: number; upload_id: string }>(config, ["put", local]);
		expect(resumed.resumed).toBe(true);
		expect(resumed.upload_id).toBe(Object.values(saved)[0]?.upload_id);
		expect(resumed.bytes_sent).toBeLessThan(data.length);
		expect(resumed.node.size).toBe(data.length);
		expect(JSON.parse(readFileSync(join(config, "uploads.json"), "utf8"))).toEqual({});
		await json(config, ["get", "/video.bin", join(work, "back.bin")]);
		expect(readFileSync(join(work, "back.bin")).equals(data)).toBe(true);
	});
});

describe("drive get resumes", () => {
	it("continues a partial download with Range and checks the SHA-256", async () => {
		const { config, work } = await signedInUser();
		const data = generate(3_000_000, "cli-resume");
		writeFileSync(join(work, "big.bin"), data);
		const put = await json<{ node: Node }>(config, ["put", join(work, "big.bin")]);
		const version = put.node.version_id ?? "";
		const target = join(work, "down.bin");

		// What an interrupted run leaves: the first megabyte in the partial file.
		writeFileSync(`${target}.${version}.drive-partial`, data.subarray(0, 1_000_000));
		const got = await json<{ resumed_from: number; bytes_downloaded: number }>(config, ["get", "/big.bin", target]);
		expect(got).toMatchObject({ resumed_from: 1_000_000, bytes_downloaded: data.length - 1_000_000 });
		expect(readFileSync(target).equals(data)).toBe(true);
		expect(readdirSync(work).filter((n) => n.endsWith(".drive-partial"))).toEqual([]);

		// A run that dies mid-body leaves its partial file; the next run continues it.
		const target2 = join(work, "down2.bin");
		const crashed = await drive(config, ["get", "/big.bin", target2, "--json"], "", { DRIVE_TEST_CRASH_AFTER_BYTES: "1" });
		expect(crashed.code, crashed.stderr).toBe(70);
		expect(existsSync(target2)).toBe(false);
		const left = statSync(`${target2}.${version}.drive-partial`).size;
		expect(left).toBeGreaterThan(0);
		const continued = await json<{ resumed_from: number; bytes_downloaded: number }>(config, ["get", "/big.bin", target2]);
		expect(continued).toEqual(expect.objectContaining({ resumed_from: left, bytes_downloaded: data.length - left }));
		expect(readFileSync(target2).equals(data)).toBe(true);

		// A partial whose bytes are not the file's: the hash check catches it and the download starts over.
		const garbage = Buffer.alloc(500_000, 7);
		writeFileSync(`${target}.${version}.drive-partial`, garbage);
		const again = await json<{ resumed_from: number; bytes_downloaded: number }>(config, ["get", "/big.bin", target]);
		expect(again.resumed_from).toBe(500_000);
		expect(again.bytes_downloaded).toBe(data.length - 500_000 + data.length);
		expect(readFileSync(target).equals(data)).toBe(true);
	});
});

describe("token refresh", () => {
	it("lets one of two processes refresh an expired token, and both stay signed in", async () => {
		const { config } = await signedInUser();
		const file = join(config, "credentials.json");
		const before = JSON.parse(readFileSync(file, "utf8")) as { refresh_token: string; access_token: string; access_expires_at: number };
		writeFileSync(file, JSON.stringify({ ...before, access_token: "expired", access_expires_at: 0 }), { mode: 0o600 });

		const debug = { DRIVE_DEBUG: "1" };
		const runs = await Promise.all([drive(config, ["whoami", "--json"], "", debug), drive(config, ["whoami", "--json"], "", debug)]);
		for (const run of runs) expect(run.code, run.stderr).toBe(0);
		expect(runs.filter((run) => run.stderr.includes("access token refreshed"))).toHaveLength(1);

		const after = JSON.parse(readFileSync(file, "utf8")) as typeof before;
		expect(after.refresh_token).not.toBe(before.refresh_token);
		expect((await drive(config, ["whoami"])).code).toBe(0);
	});

	it("refreshes when the server refuses a stored token that has not expired", async () => {
		const { config } = await signedInUser();
		const file = join(config, "credentials.json");
		const stored = JSON.parse(readFileSync(file, "utf8")) as Record<string, unknown>;
		writeFileSync(file, JSON.stringify({ ...stored, access_token: "not-a-token", access_expires_at: Date.now() + 3_600_000 }), {
			mode: 0o600,
		});
		const run = await drive(config, ["whoami", "--json"], "", { DRIVE_DEBUG: "1" });
		expect(run.code, run.stderr).toBe(0);
		expect(run.stderr).toContain("access token refreshed");
	});
});
