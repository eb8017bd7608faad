/// <reference types="node" />
/**
 * Randomized convergence against the real local stack (fast-check).
 *
 * One user, three devices (three logins). Each run starts from an empty root;
 * the devices make random creates, edits (If-Match of the version the device
 * believes current, so stale ones become conflicted copies), renames, moves,
 * deletes and restores, some of them concurrently, and each device pulls
 * /v1/changes from its own cursor now and then and applies the entries to its
 * own model of the tree. The server may refuse an operation (a cycle, a
 * taken name, a parent gone): the device just observes.
 *
 * At the end every device pulls to the latest cursor, and
 * - each device's visible tree (path -> type, content hash) equals the
 *   server's, walked through /v1/nodes/:id/children from the root;
 * - every device read the journal contiguously, in seq order;
 * - no content is lost: every upload answered 2xx is still the head of some
 *   file, live or trashed, unless a later commit was based on it (then it is
 *   still downloadable by its version id); either way the bytes come back.
 *
 * CONVERGENCE_RUNS (default 50, so that `npm test` stays fast; run
 * CONVERGENCE_RUNS=1000 npm test -- test/e2e/convergence for a long run)
 * sets the number of runs, shared by
 * CONVERGENCE_USERS (default 2) users whose runs go side by side (one hub
 * each, so they do not interfere). A failure prints its shard, seed and path:
 * CONVERGENCE_SEED=<seed> (with CONVERGENCE_PATH=<path> for just that run)
 * replays it in one user, and CONVERGENCE_SHRINK=1 lets fast-check shrink a
 * failure (slow).
 */
import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { ChangesPage, CommitResult, Node, NodePage, Reply, RequestOptions, Session as SessionBody } from "../support/harness";
import { stackHarness } from "../support/stack";

const h = stackHarness();
const RUNS = Number(process.env.CONVERGENCE_RUNS ?? 50);
const SEED = process.env.CONVERGENCE_SEED === undefined ? undefined : Number(process.env.CONVERGENCE_SEED);
const PATH = process.env.CONVERGENCE_PATH;
const DEVICES = 3;
const SHARDS = Number(process.env.CONVERGENCE_USERS ?? 2);

interface Session {
	name: string;
	token: string;
	refresh: string;
}

/**
 * A request as `session`; a 5xx fails the run (the server may refuse, never
 * break). A long run (CONVERGENCE_RUNS) outlives the 15-minute access
 * token: a 401 refreshes the session once and sends the request again.
 */
async function api<T>(session: Session, path: string, init: Omit<RequestOptions, "token"> = {}): Promise<Reply<T>> {
	let res = await h.call<T>(path, { ...init, token: session.token });
	if (res.status === 401) {
		const refreshed = await h.call<SessionBody>("/v1/auth/refresh", { method: "POST", json: { refresh_token: session.refresh } });
		if (refreshed.status !== 200) throw new Error(`${session.name}: refresh answered ${refreshed.status}: ${refreshed.text}`);
		Object.assign(session, { token: refreshed.body.access_token, refresh: refreshed.body.refresh_token });
		res = await h.call<T>(path, { ...init, token: session.token });
	}
	if (res.status >= 500) throw new Error(`${init.method ?? "GET"} ${path} answered ${res.status}: ${res.text}`);
	return res;
}

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

// ---- a device's model of the tree -------------------------------------------

interface ModelNode {
	id: string;
	parent_id: string | null;
	name: string;
	type: "file" | "folder";
	version_id: string | null;
	content_hash: string | null;
	trashed: boolean;
}

type Tree = Map<string, { type: "file" | "folder"; content_hash: string | null }>;

/**
 * Every node the device has heard of, each with its own `trashed` flag as the
 * journal last reported it. A folder's trash or restore is one entry; its
 * subtree follows it implicitly, so a node is visible when neither it nor any
 * ancestor is trashed.
 */
class Device {
	readonly nodes = new Map<string, ModelNode>();
	cursor = "";
	lastSeq: number | null = null;
	readonly gaps: string[] = [];

	constructor(
		readonly session: Session,
		readonly index: number,
	) {}

	reset(root: Node, cursor: string): void {
		this.nodes.clear();
		this.nodes.set(root.id, toModel(root));
		this.cursor = cursor;
		this.lastSeq = null;
		this.gaps.length = 0;
	}

	#pulling: Promise<void> = Promise.resolve();

	/** Pulls every entry after the device's cursor and applies it; one pull at a time per device. */
	pull(): Promise<void> {
		const next = this.#pulling.then(() => this.#pull());
		this.#pulling = next.catch(() => undefined);
		return next;
	}

	async #pull(): Promise<void> {
		for (;;) {
			const res = await api<ChangesPage>(this.session, `/v1/changes?cursor=${encodeURIComponent(this.cursor)}&limit=50`);
			if (res.status !== 200) throw new Error(`${this.session.name}: /v1/changes answered ${res.status} ${JSON.stringify(res.body)}`);
			for (const e of res.body.entries) {
				if (this.lastSeq !== null && e.seq !== this.lastSeq + 1) this.gaps.push(`${this.lastSeq} -> ${e.seq}`);
				this.lastSeq = e.seq;
				this.nodes.set(e.node.id, toModel(e.node));
			}
			this.cursor = res.body.cursor;
			if (!res.body.has_more) return;
		}
	}

	#visible(id: string, memo: Map<string, boolean>): boolean {
		const known = memo.get(id);
		if (known !== undefined) return known;
		memo.set(id, false); // a cycle counts as invisible (and shows up as a difference)
		const n = this.nodes.get(id);
		let v = false;
		if (n && !n.trashed) v = n.parent_id === null ? true : this.#visible(n.parent_id, memo);
		memo.set(id, v);
		return v;
	}

	visibleNodes(): ModelNode[] {
		const memo = new Map<string, boolean>();
		return [...this.nodes.values()].filter((n) => this.#visible(n.id, memo));
	}

	folders(): ModelNode[] {
		return this.visibleNodes().filter((n) => n.type === "folder");
	}

	nonRoot(): ModelNode[] {
		return this.visibleNodes().filter((n) => n.parent_id !== null);
	}

	files(): ModelNode[] {
		return this.visibleNodes().filter((n) => n.type === "file");
	}

	trashed(): ModelNode[] {
		return [...this.nodes.values()].filter((n) => n.trashed);
	}

	/** path -> {type, content_hash} of the visible tree; a duplicate path is recorded as such. */
	tree(): Tree {
		const byParent = new Map<string, ModelNode[]>();
		const visible = this.visibleNodes();
		for (const n of visible) {
			if (n.parent_id === null) continue;
			const list = byParent.get(n.parent_id) ?? [];
			list.push(n);
			byParent.set(n.parent_id, list);
		}
		const out: Tree = new Map();
		const walk = (id: string, prefix: string) => {
			for (const c of byParent.get(id) ?? []) {
				let path = `${prefix}/${c.name}`;
				if (out.has(path)) path = `${path} [DUPLICATE ${c.id}]`;
				out.set(path, { type: c.type, content_hash: c.type === "file" ? c.content_hash : null });
				if (c.type === "folder") walk(c.id, path);
			}
		};
		const root = visible.find((n) => n.parent_id === null);
		if (root) walk(root.id, "");
		return out;
	}
}

function toModel(n: Node): ModelNode {
	return {
		id: n.id,
		parent_id: n.parent_id,
		name: n.name,
		type: n.type,
		version_id: n.version_id,
		content_hash: n.content_hash,
		trashed: n.trashed,
	};
}

/** The server's visible tree, walked from the root through the children listing. */
async function serverTree(session: Session, rootId: string): Promise<{ tree: Tree; topLevel: string[] }> {
	const tree: Tree = new Map();
	const topLevel: string[] = [];
	const walk = async (id: string, prefix: string): Promise<void> => {
		const res = await api<NodePage>(session, `/v1/nodes/${id}/children?limit=1000`);
		if (res.status !== 200) throw new Error(`children of ${id}: ${res.status}`);
		if (res.body.next_cursor !== null) throw new Error("more than 1000 children in a run");
		if (id === rootId) topLevel.push(...res.body.items.map((n) => n.id));
		await Promise.all(
			res.body.items.map(async (c) => {
				const path = `${prefix}/${c.name}`;
				tree.set(path, { type: c.type, content_hash: c.type === "file" ? c.content_hash : null });
				if (c.type === "folder") await walk(c.id, path);
			}),
		);
	};
	await walk(rootId, "");
	return { tree, topLevel };
}

const sorted = (t: Tree) => Object.fromEntries([...t.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

// ---- operations --------------------------------------------------------------

type OpKind = "mkdir" | "create" | "edit" | "rename" | "move" | "trash" | "restore" | "pull";

interface Op {
	device: number;
	kind: OpKind;
	/** Picks among the candidates the device's model offers at the time. */
	a: number;
	b: number;
	bytes: Uint8Array;
}

const opArb: fc.Arbitrary<Op> = fc.record({
	device: fc.integer({ min: 0, max: DEVICES - 1 }),
	kind: fc.oneof(
		{ weight: 2, arbitrary: fc.constant<OpKind>("mkdir") },
		{ weight: 2, arbitrary: fc.constant<OpKind>("create") },
		{ weight: 6, arbitrary: fc.constant<OpKind>("edit") },
		{ weight: 2, arbitrary: fc.constant<OpKind>("rename") },
		{ weight: 3, arbitrary: fc.constant<OpKind>("move") },
		{ weight: 3, arbitrary: fc.constant<OpKind>("trash") },
		{ weight: 3, arbitrary: fc.constant<OpKind>("restore") },
		{ weight: 3, arbitrary: fc.constant<OpKind>("pull") },
	),
	a: fc.nat({ max: 1000 }),
	b: fc.nat({ max: 1000 }),
	bytes: fc.uint8Array({ maxLength: 24 }),
});

/** A step is one to three operations issued at the same time; a run is 3 to 18 operations (9 on average). */
const stepsArb = fc.array(fc.array(opArb, { minLength: 1, maxLength: 3 }), { minLength: 3, maxLength: 6 });

interface Upload {
	device: number;
	hash: string;
	versionId: string;
	nodeId: string;
	ifMatch: string | null;
	status: number;
	conflict: CommitResult["conflict"];
}

/** How often each kind of operation got each answer, over all runs: shows what the runs exercised. */
const outcomes = new Map<string, number>();
function count(what: string): void {
	outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
}

interface Run {
	devices: Device[];
	uploads: Upload[];
	log: string[];
	counter: number;
}

function pick<T>(items: T[], n: number): T | undefined {
	return items.length === 0 ? undefined : items[n % items.length];
}

/** Executes one operation as device `op.device` believes the tree to be. */
async function execute(run: Run, op: Op): Promise<void> {
	const dev = run.devices[op.device];
	if (!dev) throw new Error("no such device");
	const s = dev.session;
	const note = (what: string, status: number) => {
		run.log.push(`d${op.device} ${what} -> ${status}`);
		count(`${op.kind} ${status}`);
	};
	const upload = async (parentId: string, name: string, ifMatch: string | null) => {
		// Unique bytes per upload, so a content hash names exactly one upload.
		const bytes = Buffer.concat([Buffer.from(`u${run.counter++}:`), Buffer.from(op.bytes)]);
		const params = new URLSearchParams({ parent_id: parentId, name });
		const res = await api<CommitResult>(s, `/v1/files/content?${params}`, {
			method: "PUT",
			body: bytes,
			headers: ifMatch === null ? {} : { "If-Match": ifMatch },
		});
		note(
			`put ${name} in ${parentId.slice(-6)} if-match ${ifMatch?.slice(-6) ?? "-"}${res.body && "conflict" in res.body && res.body.conflict ? " (conflict)" : ""}`,
			res.status,
		);
		if (res.body && "conflict" in res.body && res.body.conflict)
			count(`${op.kind} conflict ${res.body.conflict.reason}${res.status === 200 ? " (revived)" : ""}`);
		if (res.status === 200 || res.status === 201) {
			expect(res.body.node.content_hash).toBe(sha256(bytes));
			run.uploads.push({
				device: op.device,
				hash: sha256(bytes),
				versionId: res.body.version.id,
				nodeId: res.body.node.id,
				ifMatch,
				status: res.status,
				conflict: res.body.conflict,
			});
		} else {
			expect([404, 409]).toContain(res.status);
		}
	};
	switch (op.kind) {
		case "pull":
			await dev.pull();
			note("pull", 200);
			return;
		case "mkdir": {
			const parent = pick(dev.folders(), op.a);
			if (!parent) return;
			const name = `d${op.b % 4}`;
			const res = await api(s, "/v1/folders", { method: "POST", json: { parent_id: parent.id, name } });
			note(`mkdir ${name} in ${parent.id.slice(-6)}`, res.status);
			expect([201, 404, 409]).toContain(res.status);
			return;
		}
		case "create": {
			const parent = pick(dev.folders(), op.a);
			if (!parent) return;
			// Device-unique names: a PUT without If-Match replaces whatever file has the name.
			await upload(parent.id, `c${op.device}-${run.counter}.txt`, null);
			return;
		}
		case "edit": {
			const file = pick(dev.files(), op.a);
			if (!file || file.parent_id === null) return;
			await upload(file.parent_id, file.name, file.version_id);
			return;
		}
		case "rename": {
			const node = pick(dev.nonRoot(), op.a);
			if (!node) return;
			const name = node.type === "file" ? `r${op.b % 3}.txt` : `r${op.b % 3}`;
			const res = await api(s, `/v1/nodes/${node.id}`, { method: "PATCH", json: { name } });
			note(`rename ${node.id.slice(-6)} to ${name}`, res.status);
			expect([200, 400, 409]).toContain(res.status);
			return;
		}
		case "move": {
			const node = pick(dev.nonRoot(), op.a);
			const target = pick(dev.folders(), op.b);
			if (!node || !target) return;
			const res = await api(s, `/v1/nodes/${node.id}`, { method: "PATCH", json: { parent_id: target.id } });
			note(`move ${node.id.slice(-6)} into ${target.id.slice(-6)}`, res.status);
			expect([200, 400, 404, 409]).toContain(res.status);
			return;
		}
		case "trash": {
			const node = pick(dev.nonRoot(), op.a);
			if (!node) return;
			const res = await api(s, `/v1/nodes/${node.id}`, { method: "DELETE" });
			note(`trash ${node.id.slice(-6)}`, res.status);
			expect(res.status).toBe(200);
			return;
		}
		case "restore": {
			// A device with nothing in its trash refreshes first, as a client showing the trash would.
			if (dev.trashed().length === 0) await dev.pull();
			const node = pick(dev.trashed(), op.a);
			if (!node) return;
			const res = await api(s, `/v1/nodes/${node.id}/restore`, { method: "POST" });
			note(`restore ${node.id.slice(-6)}`, res.status);
			expect(res.status).toBe(200);
			return;
		}
	}
}

/** root/{A/, B/, x.txt, y.txt}, made by device 0 in one round trip. */
async function seedTree(run: Run, rootId: string): Promise<void> {
	const dev = run.devices[0];
	if (!dev) throw new Error("no device");
	const mkdir = async (parentId: string, name: string) => {
		const res = await api<Node>(dev.session, "/v1/folders", { method: "POST", json: { parent_id: parentId, name } });
		expect(res.status).toBe(201);
		return res.body.id;
	};
	const put = async (parentId: string, name: string) => {
		const bytes = Buffer.from(`u${run.counter++}:seed`);
		const res = await api<CommitResult>(dev.session, `/v1/files/content?${new URLSearchParams({ parent_id: parentId, name })}`, {
			method: "PUT",
			body: bytes,
		});
		expect(res.status).toBe(201);
		run.uploads.push({
			device: 0,
			hash: sha256(bytes),
			versionId: res.body.version.id,
			nodeId: res.body.node.id,
			ifMatch: null,
			status: 201,
			conflict: null,
		});
	};
	await Promise.all([mkdir(rootId, "A"), mkdir(rootId, "B"), put(rootId, "x.txt"), put(rootId, "y.txt")]);
}

// ---- the property --------------------------------------------------------------

/** One user with DEVICES logins. */
async function signupDevices(): Promise<{ sessions: Session[]; root: Node }> {
	const first = await h.signup("device 0");
	const sessions: Session[] = [{ name: "device 0", token: first.token, refresh: first.refresh }];
	for (let i = 1; i < DEVICES; i++) {
		const device = await h.login(first, `device ${i}`);
		sessions.push({ name: `device ${i}`, token: device.token, refresh: device.refresh });
	}
	return { sessions, root: await h.node(first, first.rootId) };
}

/**
 * Runs `numRuns` runs of the property for one user of its own. Users are
 * independent (each has its own hub), so shards run side by side.
 */
async function convergenceShard(shard: number, numRuns: number, seed: number | undefined): Promise<{ runs: number; ops: number }> {
	const { sessions, root } = await signupDevices();
	const owner = sessions[0];
	if (!owner) throw new Error("no session");
	let runs = 0;
	let ops = 0;
	// The cursor after the last run cleared the root; null when unknown (first run, or it failed).
	let cleared: string | null = null;
	const latest = async () => (await api<{ cursor: string }>(owner, "/v1/changes/latest")).body.cursor;

	const property = fc.asyncProperty(stepsArb, async (steps) => {
		runs++;
		// Start from an empty root (the previous run trashed what it left)
		// and a small tree every device knows, so that the random
		// operations have files to edit and folders to move from the start.
		let cursor = cleared;
		cleared = null;
		if (cursor === null) {
			const items = (await api<NodePage>(owner, `/v1/nodes/${root.id}/children?limit=1000`)).body.items;
			await Promise.all(items.map((n) => api(owner, `/v1/nodes/${n.id}`, { method: "DELETE" })));
			cursor = await latest();
		}
		const run: Run = { devices: sessions.map((s, i) => new Device(s, i)), uploads: [], log: [], counter: 0 };
		for (const d of run.devices) d.reset(root, cursor);
		await seedTree(run, root.id);
		await Promise.all(run.devices.map((d) => d.pull()));

		for (const step of steps) {
			ops += step.length;
			await Promise.all(step.map((op) => execute(run, op)));
		}

		// Everyone catches up; every device's view must be the server's.
		const [server] = await Promise.all([serverTree(owner, root.id), ...run.devices.map((d) => d.pull())]);
		const context = () => `\n${run.log.join("\n")}`;
		for (const d of run.devices) {
			expect(d.gaps, `device ${d.index} read the journal with gaps${context()}`).toEqual([]);
			expect(sorted(d.tree()), `device ${d.index}'s tree differs from the server's${context()}`).toEqual(sorted(server.tree));
		}

		// No content lost.
		const model = run.devices[0];
		if (!model) throw new Error("no device");
		const superseded = new Set(
			run.uploads.filter((u) => u.status === 200 && u.conflict === null && u.ifMatch !== null).map((u) => u.ifMatch),
		);
		const [next] = await Promise.all([
			// Meanwhile, clear the root for the next run and note where its journal starts.
			Promise.all(server.topLevel.map((id) => api(owner, `/v1/nodes/${id}`, { method: "DELETE" }))).then(latest),
			...run.uploads.map(async (u) => {
				let path: string;
				if (superseded.has(u.versionId)) {
					path = `/v1/files/${u.nodeId}/content?version_id=${u.versionId}`;
				} else {
					const holder = [...model.nodes.values()].find((n) => n.type === "file" && n.content_hash === u.hash);
					expect(
						holder,
						`upload ${u.versionId} (device ${u.device}, ${u.status}, conflict ${JSON.stringify(u.conflict)}) is no file's head${context()}`,
					).toBeDefined();
					path = `/v1/files/${holder?.id ?? ""}/content`;
				}
				const res = await h.request(path, { token: owner.token });
				expect(res.status, path).toBe(200);
				expect(sha256(new Uint8Array(await res.arrayBuffer()))).toBe(u.hash);
			}),
		]);
		cleared = next;
	});

	const params: fc.Parameters<[Op[][]]> = { numRuns, endOnFailure: process.env.CONVERGENCE_SHRINK !== "1" };
	if (seed !== undefined) params.seed = seed;
	if (PATH !== undefined) params.path = PATH;
	try {
		await fc.assert(property, params);
	} catch (err) {
		// fast-check's message carries the seed and path that replay the failure.
		throw new Error(`convergence shard ${shard}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
	}
	return { runs, ops };
}

// ---- the test ------------------------------------------------------------------

describe("convergence of three devices", () => {
	it(`every device's model equals the server's tree and no content is lost (${RUNS} runs)`, async () => {
		const started = Date.now();
		// Two users side by side halve the wall time; a replay (CONVERGENCE_SEED) runs one, with every run.
		const shards = SEED === undefined ? SHARDS : 1;
		const base = SEED ?? Math.floor(Math.random() * 0x7fffffff);
		const results = await Promise.all(
			Array.from({ length: shards }, (_, i) => convergenceShard(i, Math.ceil(RUNS / shards), SEED === undefined ? (base + i) | 0 : base)),
		);
		const runs = results.reduce((n, r) => n + r.runs, 0);
		const ops = results.reduce((n, r) => n + r.ops, 0);
		expect(runs).toBeGreaterThanOrEqual(RUNS);
		const seconds = (Date.now() - started) / 1000;
		const histogram = [...outcomes.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([k, v]) => `${k}: ${v}`);
		console.log(
			`convergence: ${runs} runs (${shards} users side by side), ${ops} operations in ${seconds.toFixed(1)} s\n  ${histogram.join("\n  ")}`,
		);
	});
});
