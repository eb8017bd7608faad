// The measured inputs of the capacity model (docs/capacity.md, written from
// these figures by bench/capacity/model.mjs): on one fresh stack with the
// failure drills' operation counts on (DRILLS=on),
// - D1, R2 and Durable Object operations per request of each route class,
//   from POST /__drills (both workers), and the api worker's D1 time per
//   query from /_bench/d1-times (meta.duration and wall time);
// - bytes of shard metadata per file, per version, per block and per journal
//   change: the shard's SQLite file read with dbstat (every table and index)
//   before and after a user makes them;
// - commits per second of one user's hub, and of four users on one shard.
import { createHash, randomBytes } from "node:crypto";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DatabaseSync } from "node:sqlite";
import { client, fileCommitRate } from "../lib/sync-client.mjs";

const DEFAULTS = {
	/** Requests of each route class whose operations are counted. */
	perClass: 40,
	/** Files made in one shard for the bytes per file (POST /v1/files/batch, 256 a request). */
	files: 4096,
	/** Multi-block files (8 MiB of random bytes: about 8 blocks each) for the bytes per block. */
	bigFiles: 8,
	bigFileBytes: 8 << 20,
	/** Renames for the bytes per journal change. */
	renames: 1000,
	commits: 600,
	commitWarmup: 300,
	concurrency: 16,
	/** Users signed up to find four on one shard. */
	shardUsers: 16,
};

const QUICK = { perClass: 8, files: 512, bigFiles: 2, renames: 100, commits: 60, commitWarmup: 30, shardUsers: 8 };

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx, options = {}) {
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options };
	const log = (line) => ctx.log(`capacity: ${line}`);
	const stack = await ctx.startStack({ vars: { DRILLS: "on" } });
	const api = client(stack.url, "capacity");
	const must = async (what, res, ...ok) => {
		if (!ok.includes(res.status)) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
		return res.body;
	};
	const shards = shardFiles(stack.persistTo);
	const shardOf = (userId) => {
		for (const [name, file] of shards)
			if (withDb(file, (db) => db.prepare("SELECT 1 FROM nodes WHERE user_id = ?").get(userId))) return name;
		throw new Error(`no shard holds user ${userId}`);
	};
	const counters = async () => {
		const drills = await api.request("/__drills", { method: "POST", json: { reset: true } });
		await must("POST /__drills", drills, 200);
		const times = await must("GET /_bench/d1-times", await api.request("/_bench/d1-times?reset=1"), 200);
		return { drills: drills.body, times };
	};

	try {
		// ---- operations per request, by route class
		log(`operations per request: ${o.perClass} requests of each class`);
		const user = await api.signup("ops");
		const seeded = await batchUpload(stack.url, user, 64, "seed");
		const file = seeded[0];
		const cursor = await api.latest(user);
		let renamed = 0;
		const classes = {
			"GET /v1/me": () => api.request("/v1/me", { token: user.token }),
			"GET /v1/nodes/:id": () => api.request(`/v1/nodes/${file.node.id}`, { token: user.token }),
			"GET /v1/nodes/:id/children": () => api.request(`/v1/nodes/${user.rootId}/children?limit=100`, { token: user.token }),
			"GET /v1/changes": () => api.request(`/v1/changes?cursor=${encodeURIComponent(cursor)}&limit=100`, { token: user.token }),
			"GET /v1/files/:id/content": () => api.request(`/v1/files/${file.node.id}/content`, { token: user.token }),
			"PUT /v1/files/content (new file)": (i) =>
				api.request(`/v1/files/content?${new URLSearchParams({ parent_id: user.rootId, name: `new-${i}.txt` })}`, {
					method: "PUT",
					token: user.token,
					body: `new ${i} ${randomBytes(8).toString("hex")}`,
				}),
			"PUT /v1/files/:id/content (new version)": (i) =>
				api.request(`/v1/files/${seeded[1].node.id}/content`, {
					method: "PUT",
					token: user.token,
					body: `v ${i} ${randomBytes(8).toString("hex")}`,
				}),
			"PATCH /v1/nodes/:id (rename)": () =>
				api.request(`/v1/nodes/${seeded[2].node.id}`, { method: "PATCH", token: user.token, json: { name: `renamed-${renamed++}.txt` } }),
		};
		const perClass = {};
		for (const [name, run] of Object.entries(classes)) {
			await run(-1);
			await counters();
			const t0 = performance.now();
			for (let i = 0; i < o.perClass; i++) await must(name, await run(i), 200, 201);
			const seconds = (performance.now() - t0) / 1000;
			const { drills, times } = await counters();
			perClass[name] = { requests: o.perClass, seconds, api: drills.api, notify: drills.notify, d1: times };
		}

		// ---- bytes of metadata: files, versions, blocks, journal changes
		log(`bytes: ${o.files} files in one shard`);
		const owner = await api.signup("bytes");
		const shard = shards.get(shardOf(owner.userId));
		const before = tableBytes(shard);
		const t0 = performance.now();
		const files = await batchUpload(stack.url, owner, o.files, "f");
		const batchSeconds = (performance.now() - t0) / 1000;
		const afterFiles = tableBytes(shard);
		log(`bytes: a new version of each of ${o.files} files`);
		await batchUpload(stack.url, owner, o.files, "f", files);
		const afterVersions = tableBytes(shard);
		log(`bytes: ${o.bigFiles} files of ${o.bigFileBytes >> 20} MiB`);
		for (let i = 0; i < o.bigFiles; i++) {
			const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: owner.rootId, name: `big-${i}.bin` })}`, {
				method: "PUT",
				token: owner.token,
				body: randomBytes(o.bigFileBytes),
			});
			await must("PUT big", res, 201);
		}
		const afterBig = tableBytes(shard);
		const bigBlocks = afterBig.version_blocks.cells - afterVersions.version_blocks.cells;
		log(`bytes: ${o.renames} renames`);
		for (let i = 0; i < o.renames; i++)
			await must(
				"rename",
				await api.request(`/v1/nodes/${files[i % files.length].node.id}`, {
					method: "PATCH",
					token: owner.token,
					json: { name: `r-${i}.txt` },
				}),
				200,
			);
		const afterRenames = tableBytes(shard);
		const bytes = {
			files: o.files,
			bigFiles: o.bigFiles,
			bigBlocks,
			renames: o.renames,
			batchFilesPerSecond: o.files / batchSeconds,
			perFile: delta(before, afterFiles),
			perVersion: delta(afterFiles, afterVersions),
			perBigFile: delta(afterVersions, afterBig),
			perRename: delta(afterBig, afterRenames),
			shardTotal: total(afterRenames),
		};

		// ---- commits per second: one hub; four hubs on one shard
		log(`commits: ${o.commits} by one user, ${o.concurrency} in flight`);
		const solo = await api.signup("hub");
		await fileCommitRate(api, solo, o.commitWarmup, o.concurrency, 100);
		const perHub = await fileCommitRate(api, solo, o.commits, o.concurrency, 100);
		const byShard = new Map();
		for (let i = 0; i < o.shardUsers; i++) {
			const u = await api.signup(`shard-${i}`);
			const s = shardOf(u.userId);
			byShard.set(s, [...(byShard.get(s) ?? []), u]);
		}
		const group = [...byShard.values()].sort((a, b) => b.length - a.length)[0].slice(0, 4);
		log(`commits: ${group.length} users of one shard at once`);
		// Shares of the single user's counts, so the two figures cost the stack about the same.
		const each = (n) => Math.ceil(n / group.length);
		await Promise.all(group.map((u) => fileCommitRate(api, u, each(o.commitWarmup), o.concurrency / group.length, 100)));
		const s0 = performance.now();
		const legs = await Promise.all(group.map((u) => fileCommitRate(api, u, each(o.commits), o.concurrency / group.length, 100)));
		const perShard = {
			users: group.length,
			count: legs.reduce((n, l) => n + l.count, 0),
			perSecond: legs.reduce((n, l) => n + l.count, 0) / ((performance.now() - s0) / 1000),
		};
		return { options: o, perClass, bytes, commits: { perHub, perShard } };
	} finally {
		await stack.stop();
	}
}

/** The local D1 files of the shards: name (the database's file) → path, found by their `nodes` table. */
function shardFiles(persistTo) {
	const dir = join(persistTo, "v3", "d1", "miniflare-D1DatabaseObject");
	const out = new Map();
	for (const f of readdirSync(dir).filter((f) => f.endsWith(".sqlite"))) {
		const file = join(dir, f);
		if (withDb(file, (db) => db.prepare("SELECT 1 FROM sqlite_schema WHERE name = 'nodes'").get())) out.set(f, file);
	}
	return out;
}

function withDb(file, work) {
	const db = new DatabaseSync(file, { readOnly: true });
	try {
		return work(db);
	} finally {
		db.close();
	}
}

/** Bytes of every table and index of `file`: pages (what the 10 GB limit counts) and payload (the rows' own bytes). */
function tableBytes(file) {
	return withDb(file, (db) => {
		const rows = db
			.prepare("SELECT name, SUM(pgsize) AS pages, SUM(payload) AS payload, SUM(ncell) AS cells FROM dbstat GROUP BY name")
			.all();
		const out = {};
		// SQLite's own indexes of TEXT primary keys (sqlite_autoindex_*) are metadata too; its schema and statistics are not.
		for (const r of rows)
			if (r.name !== "sqlite_schema" && !r.name.startsWith("sqlite_stat"))
				out[r.name] = { pages: r.pages, payload: r.payload, cells: r.cells };
		const page = db.prepare("PRAGMA page_count").get().page_count * db.prepare("PRAGMA page_size").get().page_size;
		out["(file)"] = { pages: page, payload: 0, cells: 0 };
		return out;
	});
}

function delta(a, b) {
	const out = {};
	for (const name of new Set([...Object.keys(a), ...Object.keys(b)])) {
		const x = a[name] ?? { pages: 0, payload: 0, cells: 0 };
		const y = b[name] ?? { pages: 0, payload: 0, cells: 0 };
		const d = { pages: y.pages - x.pages, payload: y.payload - x.payload, cells: y.cells - x.cells };
		if (d.pages !== 0 || d.payload !== 0 || d.cells !== 0) out[name] = d;
	}
	return out;
}

function total(a) {
	return Object.fromEntries(Object.entries(a).map(([k, v]) => [k, v.pages]));
}

/**
 * `count` small files through POST /v1/files/batch (256 a request), each a
 * few unique bytes; with `existing`, a new version of each of those instead.
 * Resolves with the results ({node, version}) in order.
 */
async function batchUpload(base, user, count, prefix, existing) {
	const out = [];
	for (let start = 0; start < count; start += 256) {
		const n = Math.min(256, count - start);
		const form = new FormData();
		const items = [];
		const parts = [];
		for (let i = start; i < start + n; i++) {
			const body = Buffer.from(`${prefix} ${i} ${randomBytes(12).toString("hex")}`);
			const sha256 = createHash("sha256").update(body).digest("hex");
			const prior = existing?.[i];
			items.push(
				prior
					? { file_id: prior.node.id, if_match: prior.version.id, size: body.length, sha256 }
					: { parent_id: user.rootId, name: `${prefix}-${i}.txt`, size: body.length, sha256 },
			);
			parts.push(body);
		}
		form.append("manifest", JSON.stringify({ items }));
		parts.forEach((p, i) => form.append(`f${i}`, new Blob([p]), `f${i}`));
		const res = await fetch(`${base}/v1/files/batch`, { method: "POST", headers: { Authorization: `Bearer ${user.token}` }, body: form });
		const body = await res.json();
		if (res.status !== 200) throw new Error(`POST /v1/files/batch: ${res.status} ${JSON.stringify(body)}`);
		for (const r of body.results) {
			if (r.error) throw new Error(`POST /v1/files/batch item: ${JSON.stringify(r.error)}`);
			out.push(r);
		}
	}
	return out;
}
