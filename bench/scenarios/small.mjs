// The small-request path: 16 clients on keep-alive connections, each row a
// fixed number of requests after a warm-up, beside the floor (an
// unauthenticated 404) in the same round: authenticated metadata reads and
// 4 KiB file uploads by one user, one by one and in batches of
// BATCH_FILES (POST /v1/files/batch, figures per file), and downloads of
// such files in batches (POST /v1/files/batch/content, figures per file). Runs again on a stack with wrangler dev's
// local trace collector on, as `npm start` users see it.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { Agent } from "node:http";
import { loadavg } from "node:os";
import { pool, send, signup } from "../lib/http.mjs";
import { cpuDuring } from "../lib/proc.mjs";
import { median, pairedRatio, summarize } from "../lib/stats.mjs";

/** Concurrent clients, each on its own keep-alive connection. */
export const CLIENTS = 16;
const FILE_BYTES = 4096;
/** Files of the new-version row; client c writes files c, c + 16, ..., so no two requests race on one file. */
const VERSIONED_FILES = 4 * CLIENTS;
/** Files per request of the batch row. */
export const BATCH_FILES = 64;
/** Children of the listed folder: half folders, half 4 KiB files. */
const CHILDREN = 40;

/** Rows in the order each round runs them, each right after a phase of the floor. */
export const ROWS = ["floor", "d1Read", "me", "node", "children", "r2Put", "putNew", "putVersion", "putBatch", "getBatch"];
/** Rows whose requests carry BATCH_FILES files each. */
const BATCHED = new Set(["putBatch", "getBatch"]);

/** Rows that write: fewer requests each. */
const WRITES = new Set(["r2Put", "putNew", "putVersion", "putBatch"]);
/** A batch request carries BATCH_FILES files: its row sends this many times fewer requests. */
const requestsOf = (name, count) => (BATCHED.has(name) ? Math.max(CLIENTS, Math.ceil((count * 8) / BATCH_FILES)) : count);

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx) {
	const settings = ctx.quick
		? { clients: CLIENTS, rounds: 2, tracedRounds: 1, floor: 80, reads: 120, writes: 40, warmUp: 32 }
		: { clients: CLIENTS, rounds: 5, tracedRounds: 3, floor: 400, reads: 600, writes: 240, warmUp: 160 };
	const figures = { settings };
	for (const localTraces of [false, true]) {
		const stack = await ctx.startStack({ localTraces });
		const log = (line) => ctx.log(`small${localTraces ? " (trace collector on)" : ""}: ${line}`);
		try {
			const rounds = localTraces ? settings.tracedRounds : settings.rounds;
			figures[localTraces ? "traced" : "measured"] = await onStack(stack, { ...settings, rounds }, log);
		} finally {
			await stack.stop();
		}
	}
	return figures;
}

/** Setup, warm-up, then `rounds` rounds of every row; figures per row. */
async function onStack(stack, settings, log) {
	const loadStart = loadavg()[0];
	const clients = Array.from({ length: CLIENTS }, () => new Client(stack.url));
	const user = await signup(stack.url, "small");
	log("setting up: folders, children, files to version");
	const setup = clients[0];
	const folder = async (parentId, name) => (await setup.json("POST", "/v1/folders", user.token, 201, { parent_id: parentId, name })).id;
	const put = async (parentId, name, status) => {
		const body = randomBytes(FILE_BYTES);
		const res = await setup.json("PUT", contentPath(parentId, name), user.token, status, body);
		if (res.node.size !== FILE_BYTES || res.node.content_hash !== sha256(body))
			throw new Error(`PUT ${name}: stored ${JSON.stringify(res.node)}`);
		return res.node.id;
	};
	const top = await folder(user.rootId, "small");
	const listed = await folder(top, "children");
	const newFiles = await folder(top, "new");
	const versioned = await folder(top, "versioned");
	await pool(CHILDREN / 2, 1, (i) => folder(listed, `folder-${i}`));
	const childFiles = await pool(CHILDREN / 2, 1, (i) => put(listed, `file-${i}.bin`, 201));
	await pool(VERSIONED_FILES, 1, (i) => put(versioned, `v-${i}.bin`, 201));
	const fileId = childFiles[0];
	// Files the download batches read: client c asks for window c of them, so clients do not read the same files at once.
	const downloads = await folder(top, "downloads");
	const readable = [];
	for (let i = 0; i < CLIENTS; i++)
		readable.push(
			...(await setup.putBatch(
				downloads,
				Array.from({ length: BATCH_FILES }, (_, k) => `d-${i}-${k}.bin`),
				user.token,
			)),
		);

	let newCount = 0;
	/** Each row: one request by client `c` (the n-th request of the row), checked; resolves when its body is read. */
	const rows = {
		floor: (client) => client.send("GET", "/v1/bench-no-such-route", null, 404),
		// Ceilings: one D1 read, or one R2 put of 4 KiB, and nothing else (bench/routes.ts).
		d1Read: (client) => client.send("GET", "/_bench/d1", null, 200),
		r2Put: (client) => client.send("PUT", `/_bench/raw/small-${newCount++}`, null, 200, randomBytes(FILE_BYTES)),
		me: (client) => client.send("GET", "/v1/me", user.token, 200),
		node: (client) => client.send("GET", `/v1/nodes/${fileId}`, user.token, 200),
		children: (client) => client.send("GET", `/v1/nodes/${listed}/children`, user.token, 200),
		putNew: (client) => client.putFile(contentPath(newFiles, `new-${newCount++}.bin`), user.token, 201),
		putVersion: (client, c, n) => client.putFile(contentPath(versioned, `v-${(n * CLIENTS + c) % VERSIONED_FILES}.bin`), user.token, 200),
		putBatch: (client) =>
			client.putBatch(
				newFiles,
				Array.from({ length: BATCH_FILES }, () => `batch-${newCount++}.bin`),
				user.token,
			),
		getBatch: (client, c) => client.getBatch(readable.slice(c * BATCH_FILES, (c + 1) * BATCH_FILES), user.token),
	};
	await checkShapes(clients[0], user, fileId, listed);

	const phase = async (name, count) => {
		await user.freshToken();
		spawnSync("sync");
		let next = 0;
		const latencies = [];
		const clientCpu = process.cpuUsage();
		const t0 = performance.now();
		const { cpu } = await cpuDuring(stack.procs, () =>
			Promise.all(
				clients.map(async (client, c) => {
					for (let n = 0; next < count; n++) {
						next++;
						const s = performance.now();
						await rows[name](client, c, n);
						latencies.push(performance.now() - s);
					}
				}),
			),
		);
		const seconds = (performance.now() - t0) / 1000;
		const used = process.cpuUsage(clientCpu);
		return { n: count, seconds, rate: count / seconds, cpuMs: cpu, clientCpuMs: (used.user + used.system) / 1000, latencies };
	};

	log(`warm-up: ${settings.warmUp} requests of each row`);
	for (const name of ROWS) await phase(name, requestsOf(name, WRITES.has(name) ? Math.ceil(settings.warmUp / 2) : settings.warmUp));

	// Load on a shared machine comes and goes within seconds, so each row is
	// paired with a floor phase run just before it rather than once a round.
	const perRow = Object.fromEntries(ROWS.map((name) => [name, []]));
	for (let round = 1; round <= settings.rounds; round++) {
		for (const name of ROWS.slice(1)) {
			const floor = await phase("floor", settings.floor);
			perRow.floor.push(floor);
			const measured = await phase(name, requestsOf(name, WRITES.has(name) ? settings.writes : settings.reads));
			perRow[name].push({ ...perFile(name, measured), floorRate: floor.rate });
		}
		const rates = ROWS.slice(1).map(
			(name) => `${name} ${perRow[name].at(-1).rate.toFixed(0)}/s (floor ${perRow[name].at(-1).floorRate.toFixed(0)}/s)`,
		);
		log(`round ${round}: ${rates.join(", ")}`);
	}
	const connections = clients.reduce((sum, client) => sum + client.connections, 0);
	for (const client of clients) client.close();

	const out = {};
	for (const name of ROWS) {
		const phases = perRow[name];
		const n = phases.reduce((sum, r) => sum + r.n, 0);
		const total = (pick) => phases.reduce((sum, r) => sum + pick(r), 0);
		out[name] = {
			rate: median(phases.map((r) => r.rate)),
			vsFloor: pairedRatio(
				phases,
				(r) => r.rate,
				(r) => r.floorRate ?? r.rate,
			),
			latency: summarize(phases.flatMap((r) => r.latencies)),
			cpuMsPerRequest: { runtime: total((r) => r.cpuMs.runtime ?? 0) / n, proxy: total((r) => r.cpuMs.proxy ?? 0) / n },
			clientCpuMsPerRequest: total((r) => r.clientCpuMs) / n,
			phases: phases.map(({ latencies, ...r }) => ({ ...r, p50: summarize(latencies).p50 })),
		};
		delete out[name].latency.min;
	}
	return { when: new Date().toISOString(), rounds: settings.rounds, load: { start: loadStart, end: loadavg()[0] }, connections, rows: out };
}

/** A batch row's phase counted in files rather than requests, so its rate and CPU are per file (its latencies stay per request). */
function perFile(name, phase) {
	return BATCHED.has(name) ? { ...phase, n: phase.n * BATCH_FILES, rate: phase.rate * BATCH_FILES } : phase;
}

/** What a new user would check first: each read answers what it should, before anything is timed. */
async function checkShapes(client, user, fileId, listed) {
	const me = await client.json("GET", "/v1/me", user.token, 200);
	if (me.user?.id !== user.userId) throw new Error(`GET /v1/me: ${JSON.stringify(me)}`);
	const node = await client.json("GET", `/v1/nodes/${fileId}`, user.token, 200);
	if (node.id !== fileId || node.path !== "/small/children/file-0.bin") throw new Error(`GET /v1/nodes/:id: ${JSON.stringify(node)}`);
	const page = await client.json("GET", `/v1/nodes/${listed}/children`, user.token, 200);
	if (page.items?.length !== CHILDREN) throw new Error(`GET children: ${page.items?.length} items`);
}

const contentPath = (parentId, name) => `/v1/files/content?${new URLSearchParams({ parent_id: parentId, name })}`;
const sha256 = (bytes) => createHash("sha256").update(bytes).digest("hex");

/** One client: one keep-alive connection (node:http, which costs the bench less CPU per request than fetch). */
class Client {
	constructor(base) {
		const url = new URL(base);
		this.host = url.hostname;
		this.port = Number(url.port);
		this.agent = new Agent({ keepAlive: true, maxSockets: 1 });
		this.sockets = new WeakSet();
		/** Connections opened: 1 per client when keep-alive holds. */
		this.connections = 0;
	}

	/**
	 * Sends one request and reads the whole answer; throws unless its status is `status`.
	 * @param {string} method
	 * @param {string} path
	 * @param {string | null} token
	 * @param {number} status
	 * @param {Buffer | object} [body] bytes, or an object sent as JSON
	 * @param {string} [contentType] of bytes; default application/octet-stream
	 * @returns {Promise<Buffer>}
	 */
	async send(method, path, token, status, body, contentType = "application/octet-stream") {
		const headers = {};
		if (token !== null) headers.Authorization = `Bearer ${token}`;
		let payload = null;
		if (Buffer.isBuffer(body)) {
			payload = body;
			headers["Content-Type"] = contentType;
		} else if (body !== undefined) {
			payload = Buffer.from(JSON.stringify(body));
			headers["Content-Type"] = "application/json";
		}
		if (payload !== null) headers["Content-Length"] = payload.byteLength;
		const onSocket = (socket) => {
			if (this.sockets.has(socket)) return;
			this.sockets.add(socket);
			this.connections++;
		};
		const answer = await send({ agent: this.agent, host: this.host, port: this.port, method, path, headers, payload, onSocket });
		if (answer.status !== status) throw new Error(`${method} ${path}: HTTP ${answer.status} ${answer.body.toString("utf8", 0, 500)}`);
		return answer.body;
	}

	async json(method, path, token, status, body) {
		return JSON.parse((await this.send(method, path, token, status, body)).toString("utf8"));
	}

	/** POST /v1/files/batch of fresh random files, new names in `parentId`; checks every item was created with its size and hash; the versions made. */
	async putBatch(parentId, names, token) {
		const boundary = `bench${randomBytes(12).toString("hex")}`;
		const files = names.map(() => randomBytes(FILE_BYTES));
		const items = names.map((name, i) => ({ parent_id: parentId, name, size: FILE_BYTES, sha256: sha256(files[i]) }));
		const part = (headers, body) => [Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`), body, Buffer.from("\r\n")];
		const body = Buffer.concat([
			...part('Content-Disposition: form-data; name="manifest"', Buffer.from(JSON.stringify({ items }))),
			...files.flatMap((bytes, i) =>
				part(`Content-Disposition: form-data; name="file"; filename="${i}"\r\nContent-Type: application/octet-stream`, bytes),
			),
			Buffer.from(`--${boundary}--\r\n`),
		]);
		const answer = JSON.parse(
			(await this.send("POST", "/v1/files/batch", token, 200, body, `multipart/form-data; boundary=${boundary}`)).toString("utf8"),
		);
		for (const [i, result] of answer.results.entries())
			if (result.status !== "created" || result.node.size !== FILE_BYTES || result.node.content_hash !== items[i].sha256)
				throw new Error(`POST /v1/files/batch item ${i}: ${JSON.stringify(result)}`);
		return answer.results.map((result) => ({ file_id: result.node.id, version_id: result.version.id, sha256: result.node.content_hash }));
	}

	/** POST /v1/files/batch/content of `files`; checks every frame's order, size and the SHA-256 of its bytes, as a client must. */
	async getBatch(files, token) {
		const items = files.map(({ file_id, version_id }) => ({ file_id, version_id }));
		const body = await this.send("POST", "/v1/files/batch/content", token, 200, { items });
		let at = 0;
		for (const [i, want] of files.entries()) {
			const end = body.indexOf(10, at);
			const header = JSON.parse(body.toString("utf8", at, end));
			at = end + 1 + (header.size ?? 0);
			if (header.index !== i || header.size !== FILE_BYTES || sha256(body.subarray(end + 1, at)) !== want.sha256)
				throw new Error(`POST /v1/files/batch/content item ${i}: ${JSON.stringify(header)}`);
		}
		if (at !== body.byteLength) throw new Error(`POST /v1/files/batch/content: ${body.byteLength - at} bytes past the last frame`);
	}

	/** PUT of fresh random bytes; checks the stored size and hash, so a fast but wrong upload cannot pass. */
	async putFile(path, token, status) {
		const body = randomBytes(FILE_BYTES);
		const { node } = await this.json("PUT", path, token, status, body);
		if (node.size !== FILE_BYTES || node.content_hash !== sha256(body))
			throw new Error(`PUT ${path}: stored ${node.size} bytes hashing ${node.content_hash}`);
	}

	close() {
		this.agent.destroy();
	}
}
