// The load test (issue 18): many users on the 4 shards, each with two
// devices holding the sync WebSocket, doing a mix of listing, small uploads,
// downloads and renames for a fixed time, with a bounded number of requests
// in flight. Each device pulls GET /v1/changes when its socket says something
// changed, as the sync client does. The stack runs with DRILLS=on, so the
// api's and the notify worker's bindings count their operations
// (src/shared/drills.ts, POST /__drills): each shard's and the directory's
// share of the load. The same run again with DIRECTORY_CACHE=off, side by
// side.
import { createHash, randomBytes } from "node:crypto";
import { Agent } from "node:http";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import WebSocket from "ws";
import { bundle } from "../lib/bundle.mjs";
import { PASSWORD, pool, send } from "../lib/http.mjs";
import { cpuMsOf } from "../lib/proc.mjs";
import { summarize } from "../lib/stats.mjs";
import { opened } from "../lib/sync-client.mjs";

const DEFAULTS = {
	users: 1000,
	devicesPerUser: 2,
	/** The measured window. */
	seconds: 60,
	/** Requests in flight at once during the window: the client's pool. */
	inFlight: 16,
	/** Requests in flight at once while signing up, seeding and dialling. */
	setupInFlight: 16,
	/** Small files each user starts with, in one folder. */
	files: 4,
	minBytes: 1024,
	maxBytes: 16 * 1024,
};

/** Fewer users and a short window: a check that every path runs, not figures. */
const QUICK = { users: 50, seconds: 10, inFlight: 8 };

/**
 * What a device does next, by weight. Assumed, not measured: no public
 * figures split a file service's requests by kind.
 * - list 40: browsing is the most common thing a person does in the app, and
 *   a sync client lists a folder whenever it rescans one;
 * - download 25: opening and previewing files, and the other device fetching
 *   what changed; fewer than listings (one listing precedes most opens);
 * - upload-version 15, upload-new 10: saves of small documents, a new version
 *   more often than a new file;
 * - rename 10: tidying up, rarer than a save.
 * On top of these, every change makes each of the user's devices pull
 * GET /v1/changes after its socket's frame (the class "changes").
 */
export const MIX = [
	{ op: "list", weight: 40 },
	{ op: "download", weight: 25 },
	{ op: "upload-version", weight: 15 },
	{ op: "upload-new", weight: 10 },
	{ op: "rename", weight: 10 },
];

/** The route of each class, for the report. */
export const ROUTES = {
	list: "GET /v1/nodes/:id/children",
	download: "GET /v1/files/:id/content",
	"upload-version": "PUT /v1/files/:id/content",
	"upload-new": "PUT /v1/files/content",
	rename: "PATCH /v1/nodes/:id",
	changes: "GET /v1/changes (after a frame)",
};

/** The stacks, one after the other: the directory cache on (the default), then off. */
const MODES = [
	{ name: "cacheOn", vars: { DRILLS: "on", DIRECTORY_CACHE: "on" } },
	{ name: "cacheOff", vars: { DRILLS: "on", DIRECTORY_CACHE: "off" } },
];

/** Hang guard of one request: a request that takes longer counts as a network error. */
const REQUEST_TIMEOUT_MS = 60_000;

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 * @param {Partial<typeof DEFAULTS>} [options]
 */
export async function measure(ctx, options = {}) {
	const fromEnv = {
		...(process.env.BENCH_LOAD_USERS && { users: Number(process.env.BENCH_LOAD_USERS) }),
		...(process.env.BENCH_LOAD_SECONDS && { seconds: Number(process.env.BENCH_LOAD_SECONDS) }),
		...(process.env.BENCH_LOAD_IN_FLIGHT && { inFlight: Number(process.env.BENCH_LOAD_IN_FLIGHT) }),
	};
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...fromEnv, ...options };
	const { placeUser } = await bundle(ctx.tree, "workers/api/services/placement.ts", join(ctx.tmp, "placement.mjs"), "neutral");
	const { d1Bindings } = await import(pathToFileURL(join(ctx.tree, "scripts", "local-stack.mjs")).href);
	const shards = d1Bindings().filter((b) => b.startsWith("SHARD_")).length;
	const figures = { settings: { ...o, shards, mix: MIX } };
	for (const mode of MODES) {
		const log = (line) => ctx.log(`load (${mode.name}): ${line}`);
		const stack = await ctx.startStack({ vars: mode.vars });
		try {
			figures[mode.name] = await onStack(stack, o, { shards, placeUser, log });
		} finally {
			await stack.stop();
		}
	}
	return figures;
}

/** Setup, then the measured window, on one fresh stack. */
async function onStack(stack, o, { shards, placeUser, log }) {
	const http = new Http(stack.url, Math.max(o.inFlight, o.setupInFlight));
	const sockets = new Sockets(stack.url);
	try {
		const t0 = performance.now();
		log(`signing up ${o.users} users, ${o.devicesPerUser} devices each, ${o.files} files each`);
		const users = await pool(o.users, o.setupInFlight, (i) => setUpUser(http, o, i));
		const devices = users.flatMap((u) => u.devices);
		log(`dialling ${devices.length} WebSockets`);
		await pool(devices.length, o.setupInFlight, (i) => sockets.open(http, devices[i]));
		await sockets.hello(devices, 60_000);
		const setupSeconds = (performance.now() - t0) / 1000;
		const perShard = Array.from({ length: shards }, (_, s) => users.filter((u) => placeUser(u.userId, shards) === s).length);
		log(`set up in ${setupSeconds.toFixed(0)} s; users per shard ${perShard.join(", ")}`);

		const refreshed = await refreshBefore(http, devices, Date.now() + (o.seconds + 120) * 1000, o.setupInFlight);
		if (refreshed > 0) log(`refreshed ${refreshed} access tokens that would expire during the window`);
		const runtime = stack.procs.find((p) => p.role === "runtime");
		const proxy = stack.procs.find((p) => p.role === "proxy");
		await drills(http, true);
		sockets.count = true;
		const cpu0 = { runtime: cpuMsOf(runtime.pid), proxy: proxy ? cpuMsOf(proxy.pid) : NaN };
		const load0 = loadavg()[0];
		const window = await runWindow(http, users, devices, sockets, o);
		sockets.count = false;
		const cpu = { runtime: cpuMsOf(runtime.pid) - cpu0.runtime, proxy: proxy ? cpuMsOf(proxy.pid) - cpu0.proxy : NaN };
		const counts = await drills(http, true);
		const requests = window.requests;
		log(
			`${requests} requests in ${window.seconds.toFixed(1)} s (${(requests / window.seconds).toFixed(0)}/s), ${window.errors.status5xx} 5xx, ${window.errors.status429} 429, ${window.errors.status4xx} other 4xx, ${window.errors.network} network errors`,
		);
		return {
			setupSeconds,
			usersPerShard: perShard,
			sockets: devices.length,
			...window,
			frames: sockets.frames,
			socketsLost: sockets.lost,
			cpuMsPerRequest: { runtime: cpu.runtime / requests, proxy: cpu.proxy / requests },
			runtimeBusy: cpu.runtime / (window.seconds * 1000),
			load: { start: load0, end: loadavg()[0] },
			operations: counts,
		};
	} finally {
		sockets.closeAll();
		http.close();
	}
}

/** POST /__drills: both workers' operation counts since the last reset, then zeroes them when `reset`. */
async function drills(http, reset) {
	const res = await http.send("POST", "/__drills", { json: { reset } });
	if (res.status !== 200) throw new Error(`POST /__drills: ${res.status} ${res.text()} (does the stack run with DRILLS=on?)`);
	return res.json();
}

/** One user: a signup (its first device), a login (its second), a folder and `files` small files in it. */
async function setUpUser(http, o, i) {
	const email = `load-${i}-${Date.now()}-${randomBytes(4).toString("hex")}@example.com`;
	const first = await expectJson(
		http.send("POST", "/v1/auth/signup", { json: { email, password: PASSWORD, device_name: "load device 0" } }),
		"signup",
		201,
	);
	const user = { userId: first.user.id, rootId: "", folderId: "", files: [], devices: [], names: 0 };
	user.devices.push(device(user, 0, first));
	for (let d = 1; d < o.devicesPerUser; d++) {
		const next = await expectJson(
			http.send("POST", "/v1/auth/login", { json: { email, password: PASSWORD, device_name: `load device ${d}` } }),
			"login",
			200,
		);
		user.devices.push(device(user, d, next));
	}
	const token = user.devices[0].token;
	user.rootId = (await expectJson(http.send("GET", "/v1/nodes/root", { token }), "GET /v1/nodes/root", 200)).id;
	user.folderId = (
		await expectJson(
			http.send("POST", "/v1/folders", { token, json: { parent_id: user.rootId, name: "Documents" } }),
			"POST /v1/folders",
			201,
		)
	).id;
	// One request seeds them all (POST /v1/files/batch), so setup stays a small part of the run.
	const bodies = Array.from({ length: o.files }, () => randomBytes(sizeOf(o)));
	const items = bodies.map((b, f) => ({ parent_id: user.folderId, name: `file-${f}.txt`, size: b.byteLength, sha256: sha256(b) }));
	const form = new globalThis.FormData();
	form.append("manifest", JSON.stringify({ items }));
	for (const [f, b] of bodies.entries()) form.append("file", new Blob([b]), `file-${f}.txt`);
	const res = await fetch(`${http.base}/v1/files/batch`, { method: "POST", headers: { Authorization: `Bearer ${token}` }, body: form });
	const seeded = await res.json();
	if (res.status !== 200 || seeded.results.some((r) => r.status !== "created"))
		throw new Error(`POST /v1/files/batch: ${res.status} ${JSON.stringify(seeded).slice(0, 500)}`);
	user.files = seeded.results.map((r) => ({ id: r.node.id, name: r.node.name }));
	return user;
}

function device(user, index, session) {
	return {
		user,
		index,
		token: session.access_token,
		refreshToken: session.refresh_token,
		expiresAt: Date.now() + session.expires_in * 1000,
		cursor: null,
		pulling: false,
		pullAgain: false,
	};
}

/** Refreshes every token that would expire before the window ends (a long setup can outlast the 15-minute access token). */
async function refreshBefore(http, devices, until, width) {
	const stale = devices.filter((d) => d.expiresAt < until);
	await pool(stale.length, width, async (i) => {
		const dev = stale[i];
		const next = await expectJson(
			http.send("POST", "/v1/auth/refresh", { json: { refresh_token: dev.refreshToken } }),
			"POST /v1/auth/refresh",
			200,
		);
		dev.token = next.access_token;
		dev.refreshToken = next.refresh_token;
		dev.expiresAt = Date.now() + next.expires_in * 1000;
	});
	return stale.length;
}

/**
 * The measured window: `inFlight` lanes, each sending one request after the
 * other until the window closes. A lane first serves a device whose socket
 * announced changes, else picks a device at random and an operation by MIX.
 */
async function runWindow(http, users, devices, sockets, o) {
	const latencies = Object.fromEntries(Object.keys(ROUTES).map((k) => [k, []]));
	const errors = { status5xx: 0, status429: 0, status4xx: 0, network: 0 };
	const byClass = Object.fromEntries(Object.keys(ROUTES).map((k) => [k, { status5xx: 0, status429: 0, status4xx: 0, network: 0 }]));
	const samples = [];
	const total = MIX.reduce((a, m) => a + m.weight, 0);
	const pick = () => {
		let r = Math.random() * total;
		for (const m of MIX) if ((r -= m.weight) < 0) return m.op;
		return MIX[0].op;
	};
	const t0 = performance.now();
	const deadline = t0 + o.seconds * 1000;
	const lane = async () => {
		while (performance.now() < deadline) {
			const pulling = sockets.due.shift();
			const dev = pulling ?? devices[Math.floor(Math.random() * devices.length)];
			const op = pulling ? "changes" : pick();
			const started = performance.now();
			let status;
			try {
				status = await perform(http, dev, op, o);
			} catch (err) {
				status = 0;
				if (errors.network < 5) console.error(`[bench] load: ${op}: ${err.message}`);
			}
			const ms = performance.now() - started;
			latencies[op].push(ms);
			const kind =
				status === 0 ? "network" : status >= 500 ? "status5xx" : status === 429 ? "status429" : status >= 400 ? "status4xx" : null;
			if (kind) {
				errors[kind]++;
				byClass[op][kind]++;
				if (samples.length < 10) samples.push(`${op}: ${status}`);
			}
			if (pulling) sockets.pulled(dev);
		}
	};
	await Promise.all(Array.from({ length: o.inFlight }, lane));
	const seconds = (performance.now() - t0) / 1000;
	const requests = Object.values(latencies).reduce((a, l) => a + l.length, 0);
	return {
		seconds,
		requests,
		perSecond: requests / seconds,
		classes: Object.fromEntries(
			Object.entries(latencies).map(([k, l]) => [k, { ...summarize(l), perSecond: l.length / seconds, errors: byClass[k] }]),
		),
		errors,
		errorSamples: samples,
		pullsLeft: sockets.due.length,
	};
}

/** One request of class `op` by `dev`; its status. */
async function perform(http, dev, op, o) {
	const user = dev.user;
	const token = dev.token;
	const file = user.files[Math.floor(Math.random() * user.files.length)];
	switch (op) {
		case "list": {
			// The folder of files three times in four, else the root.
			const id = Math.random() < 0.75 ? user.folderId : user.rootId;
			return (await http.send("GET", `/v1/nodes/${id}/children`, { token })).status;
		}
		case "download":
			return (await http.send("GET", `/v1/files/${file.id}/content`, { token })).status;
		case "upload-version":
			return (await http.send("PUT", `/v1/files/${file.id}/content`, { token, body: randomBytes(sizeOf(o)) })).status;
		case "upload-new": {
			const name = `new-${dev.index}-${user.names++}.txt`;
			const query = new URLSearchParams({ parent_id: user.folderId, name });
			const res = await http.send("PUT", `/v1/files/content?${query}`, { token, body: randomBytes(sizeOf(o)) });
			if (res.status === 201) user.files.push({ id: res.json().node.id, name });
			return res.status;
		}
		case "rename": {
			// A name no other request of this user uses, so a rename never collides.
			const name = `renamed-${dev.index}-${user.names++}.txt`;
			const res = await http.send("PATCH", `/v1/nodes/${file.id}`, { token, json: { name } });
			if (res.status === 200) file.name = name;
			return res.status;
		}
		case "changes": {
			const query = dev.cursor === null ? "" : `?${new URLSearchParams({ cursor: dev.cursor })}`;
			const res = await http.send("GET", `/v1/changes${query}`, { token });
			if (res.status === 200) dev.cursor = res.json().cursor;
			return res.status;
		}
		default:
			throw new Error(`unknown operation ${op}`);
	}
}

/** Every device's socket: the cursor of its hello, and a pull queued when a `changes` frame arrives. */
class Sockets {
	constructor(base) {
		this.url = `${base.replace(/^http/, "ws")}/v1/sync/ws`;
		this.open_ = new Set();
		/** Devices whose socket announced changes, in order; each at most once. */
		this.due = [];
		this.count = false;
		this.frames = { hello: 0, changes: 0, other: 0 };
		/** Sockets that closed or failed during the window. */
		this.lost = 0;
	}

	/** A ticket (POST /v1/sync/ticket), then the upgrade; resolves once the socket is open. */
	async open(http, dev) {
		const { ticket } = await expectJson(http.send("POST", "/v1/sync/ticket", { token: dev.token }), "POST /v1/sync/ticket", 200);
		const ws = new WebSocket(`${this.url}?${new URLSearchParams({ ticket })}`, { perMessageDeflate: false });
		ws.on("message", (data) => this.#frame(dev, data));
		await opened(ws, 60_000);
		this.open_.add(ws);
		ws.on("close", () => {
			if (this.open_.delete(ws) && this.count) this.lost++;
		});
	}

	/** Waits until every device has its hello frame (its starting cursor). */
	async hello(devices, guardMs) {
		const deadline = Date.now() + guardMs;
		while (devices.some((d) => d.cursor === null)) {
			if (Date.now() > deadline) throw new Error(`${devices.filter((d) => d.cursor === null).length} sockets sent no hello`);
			await new Promise((r) => setTimeout(r, 100));
		}
	}

	#frame(dev, data) {
		let frame;
		try {
			frame = JSON.parse(String(data));
		} catch {
			return;
		}
		if (frame.type === "hello") {
			dev.cursor ??= frame.cursor;
			return;
		}
		if (this.count) this.frames[frame.type === "changes" ? "changes" : "other"]++;
		if (frame.type !== "changes") return;
		// One pull at a time per device; a frame during a pull means one more after it.
		if (dev.pulling) dev.pullAgain = true;
		else {
			dev.pulling = true;
			this.due.push(dev);
		}
	}

	/** A pull of `dev` finished: queue the next if a frame came meanwhile. */
	pulled(dev) {
		if (dev.pullAgain) {
			dev.pullAgain = false;
			this.due.push(dev);
		} else dev.pulling = false;
	}

	closeAll() {
		for (const ws of this.open_) ws.terminate();
		this.open_.clear();
	}
}

/** node:http with one keep-alive agent: cheaper per request than fetch, which matters when the client shares the cores with the stack. */
class Http {
	constructor(base, sockets) {
		this.base = base;
		const url = new URL(base);
		this.host = url.hostname;
		this.port = Number(url.port);
		this.agent = new Agent({ keepAlive: true, maxSockets: sockets });
	}

	/**
	 * Sends one request and reads the whole answer.
	 * @param {string} method
	 * @param {string} path
	 * @param {{ token?: string, json?: object, body?: Buffer }} [init]
	 * @returns {Promise<{ status: number, text: () => string, json: () => any }>}
	 */
	async send(method, path, { token, json, body } = {}) {
		const headers = {};
		if (token) headers.Authorization = `Bearer ${token}`;
		let payload = body ?? null;
		if (json !== undefined) {
			payload = Buffer.from(JSON.stringify(json));
			headers["Content-Type"] = "application/json";
		} else if (payload !== null) headers["Content-Type"] = "application/octet-stream";
		if (payload !== null) headers["Content-Length"] = payload.byteLength;
		const { host, port, agent } = this;
		const answer = await send({ agent, host, port, method, path, headers, payload, timeoutMs: REQUEST_TIMEOUT_MS });
		return { status: answer.status, text: () => answer.body.toString("utf8"), json: () => JSON.parse(answer.body.toString("utf8")) };
	}

	close() {
		this.agent.destroy();
	}
}

async function expectJson(pending, what, status) {
	const res = await pending;
	if (res.status !== status) throw new Error(`${what}: HTTP ${res.status} ${res.text().slice(0, 500)}`);
	return res.json();
}

const sizeOf = (o) => o.minBytes + Math.floor(Math.random() * (o.maxBytes - o.minBytes + 1));
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");
