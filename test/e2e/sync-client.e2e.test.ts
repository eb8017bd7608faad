/**
 * `drive sync` against the running stack, one rule per test: the real CLI
 * syncs real folders (one run at a time, no watcher, so no test waits on
 * time), and the server is read through the API. The randomized
 * two-process test is sync-random.e2e.test.ts.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { PASSWORD, type Node, type TestUser } from "../support/harness";
import { drive, envelope, freshDir, json } from "../support/cli";
import { stackHarness } from "../support/stack";

const h = stackHarness();

interface Device {
	config: string;
	dir: string;
}

/** A new account with a `/Sync` folder, and `count` devices signed in with the CLI, each with an empty local folder. */
async function setup(count: number): Promise<{ user: TestUser; folder: Node; devices: Device[] }> {
	const user = await h.signup("sync test");
	const folder = await h.mkdir(user, user.rootId, "Sync");
	const devices: Device[] = [];
	for (let i = 0; i < count; i++) {
		const config = join(freshDir("config"), "drive");
		await json(
			config,
			["login", "--email", user.email, "--password-stdin", "--device", `device ${String.fromCharCode(65 + i)}`],
			`${PASSWORD}\n`,
		);
		devices.push({ config, dir: join(freshDir("sync"), "Drive") });
	}
	return { user, folder, devices };
}

interface Done {
	event: "done";
	actions: number;
	problems: { path: string; code: string }[];
	held: { deletes: number; synced: number } | null;
}

/** One `drive sync --json` run to the end; returns its final line. */
async function sync(d: Device, ...extra: string[]): Promise<Done> {
	const run = await drive(d.config, ["sync", d.dir, ...extra, "--json"]);
	expect(run.code, run.stderr).toBe(0);
	const lines = run.stdout.trim().split("\n");
	return JSON.parse(lines[lines.length - 1] as string) as Done;
}

/** The folder's files as `path → content`, `.drive/` left out. */
function tree(dir: string): Record<string, string> {
	const out: Record<string, string> = {};
	const walk = (d: string) => {
		for (const e of readdirSync(d, { withFileTypes: true })) {
			const abs = join(d, e.name);
			const rel = relative(dir, abs);
			if (rel === ".drive") continue;
			if (e.isDirectory()) {
				out[`${rel}/`] = "";
				walk(abs);
			} else out[rel] = readFileSync(abs, "utf8");
		}
	};
	walk(dir);
	return out;
}

describe("drive sync", () => {
	it("refuses a folder without the .drive marker, links one with --init, and syncs both ways", async () => {
		const { devices } = await setup(2);
		const [a, b] = devices as [Device, Device];
		mkdirSync(a.dir, { recursive: true });
		const refused = await drive(a.config, ["sync", a.dir, "--json"]);
		expect(refused.code).toBe(2);
		expect(envelope(refused).error.code).toBe("NOT_A_SYNC_FOLDER");

		writeFileSync(join(a.dir, "notes.txt"), "from A\n");
		mkdirSync(join(a.dir, "Photos/2026"), { recursive: true });
		writeFileSync(join(a.dir, "Photos/2026/beach.jpg"), "jpeg bytes");
		expect((await sync(a, "/Sync", "--init")).actions).toBe(4);
		expect((await sync(b, "/Sync", "--init")).actions).toBe(4);
		expect(tree(b.dir)).toEqual(tree(a.dir));

		// A second run with nothing new does nothing: its own changes came back from the journal as agreement.
		expect((await sync(a)).actions).toBe(0);
		const status = await json<{ state: string; problems: unknown[]; cursor: string }>(a.config, ["status", a.dir]);
		expect(status).toMatchObject({ state: "stopped", problems: [] });
	});

	it("keeps both sides of concurrent edits, and an edit beats a delete", async () => {
		const { user, folder, devices } = await setup(2);
		const [a, b] = devices as [Device, Device];
		await h.upload(user, folder.id, "plan.txt", "v1\n");
		await h.upload(user, folder.id, "old.txt", "old\n");
		await sync(a, "/Sync", "--init");
		await sync(b, "/Sync", "--init");

		writeFileSync(join(a.dir, "plan.txt"), "A's edit\n");
		writeFileSync(join(b.dir, "plan.txt"), "B's edit\n");
		rmSync(join(a.dir, "old.txt"));
		writeFileSync(join(b.dir, "old.txt"), "B kept editing\n");
		await sync(a);
		await sync(b);
		await sync(a);
		const files = tree(a.dir);
		expect(tree(b.dir)).toEqual(files);
		expect(files["plan.txt"]).toBe("A's edit\n");
		const copies = Object.entries(files).filter(([p]) => p.startsWith("plan (conflicted copy device B "));
		expect(copies.map(([, content]) => content)).toEqual(["B's edit\n"]);
		expect(files["old.txt"]).toBe("B kept editing\n");
	});

	it("moves what the server deleted into .drive/trash instead of deleting it, and holds back a mass delete", async () => {
		const { user, folder, devices } = await setup(1);
		const [a] = devices as [Device];
		const files: Node[] = [];
		for (let i = 0; i < 24; i++) files.push((await h.upload(user, folder.id, `f${i}.txt`, `file ${i}\n`)).node);
		await sync(a, "/Sync", "--init");
		await h.trash(user, files[0]?.id as string);
		await sync(a);
		expect(existsSync(join(a.dir, "f0.txt"))).toBe(false);
		const trashed = readdirSync(join(a.dir, ".drive/trash"), { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
		expect(trashed.map((e) => e.name)).toEqual(["f0.txt"]);

		// Deleting everything on disk is held back until --force: the server keeps every file meanwhile.
		for (let i = 1; i < 24; i++) rmSync(join(a.dir, `f${i}.txt`));
		const held = await sync(a);
		expect(held.held).toEqual({ deletes: 23, synced: 23 });
		expect((await h.listAll(user, folder.id)).length).toBe(23);
		const status = await json<{ held: unknown }>(a.config, ["status", a.dir]);
		expect(status.held).toEqual({ deletes: 23, synced: 23 });
		expect((await sync(a, "--force")).held).toBeNull();
		expect(await h.listAll(user, folder.id)).toEqual([]);
	});

	it("reports what it cannot sync and syncs everything else", async () => {
		const { user, folder, devices } = await setup(1);
		const [a] = devices as [Device];
		mkdirSync(a.dir, { recursive: true });
		writeFileSync(join(a.dir, "ok.txt"), "fine");
		writeFileSync(join(a.dir, "what?.txt"), "the server refuses this name");
		symlinkSync("ok.txt", join(a.dir, "link"));
		const done = await sync(a, "/Sync", "--init");
		expect(done.problems.map((p) => [p.path, p.code]).sort()).toEqual([
			["link", "symlink"],
			["what?.txt", "invalid_name"],
		]);
		expect((await h.listAll(user, folder.id)).map((n) => n.name)).toEqual(["ok.txt"]);
		const status = await json<{ problems: { path: string }[] }>(a.config, ["status", a.dir]);
		expect(status.problems.map((p) => p.path).sort()).toEqual(["link", "what?.txt"]);

		// Renamed to a valid name, the file syncs and the problem goes away.
		rmSync(join(a.dir, "link"));
		writeFileSync(join(a.dir, "what.txt"), readFileSync(join(a.dir, "what?.txt")));
		rmSync(join(a.dir, "what?.txt"));
		expect((await sync(a)).problems).toEqual([]);
		expect((await h.listAll(user, folder.id)).map((n) => n.name).sort()).toEqual(["ok.txt", "what.txt"]);
	});

	it("syncs a folder shared with the user both ways: the mount's files come down, the member's files go up to the owner", async () => {
		const { user: owner, folder, devices } = await setup(1);
		const [ownerDevice] = devices as [Device];
		await h.upload(owner, folder.id, "agenda.txt", "owner's agenda\n");
		const { devices: memberDevices, user: member } = await setup(1);
		const [memberDevice] = memberDevices as [Device];
		const shared = await h.call("/v1/shares", {
			method: "POST",
			token: owner.token,
			json: { node_id: folder.id, members: [{ email: member.email, role: "editor" }] },
		});
		expect(shared.status, shared.text).toBe(201);

		// The member syncs their whole root: their own Sync folder and the mount of the owner's.
		await sync(memberDevice, "/", "--init");
		const mount = readdirSync(memberDevice.dir).find((name) => name.startsWith("Sync (from"));
		expect(mount).toBeDefined();
		expect(readFileSync(join(memberDevice.dir, mount as string, "agenda.txt"), "utf8")).toBe("owner's agenda\n");
		writeFileSync(join(memberDevice.dir, mount as string, "agenda.txt"), "member's edit\n");
		writeFileSync(join(memberDevice.dir, mount as string, "minutes.txt"), "member's new file\n");
		const done = await sync(memberDevice);
		expect(done.problems).toEqual([]);

		await sync(ownerDevice, "/Sync", "--init");
		expect(tree(ownerDevice.dir)).toEqual({ "agenda.txt": "member's edit\n", "minutes.txt": "member's new file\n" });
	});
});
