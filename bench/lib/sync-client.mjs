// The sync clients the scenarios share: a JSON client of the API, and
// WebSocket devices that record when each frame arrived.
import { performance } from "node:perf_hooks";
import WebSocket from "ws";
import { PASSWORD, signup } from "./http.mjs";
import { summarize } from "./stats.mjs";

/**
 * A small JSON client of the stack at `baseUrl`; `label` goes into the
 * emails of the users it signs up.
 */
export function client(baseUrl, label = "sync") {
	async function request(path, { token, method = "GET", json, body, headers = {} } = {}) {
		const h = { ...headers };
		if (token) h.Authorization = `Bearer ${token}`;
		let payload = body;
		if (json !== undefined) {
			h["Content-Type"] = "application/json";
			payload = JSON.stringify(json);
		}
		const res = await fetch(`${baseUrl}${path}`, { method, headers: h, body: payload });
		const text = await res.text();
		let parsed;
		try {
			parsed = text === "" ? null : JSON.parse(text);
		} catch {
			parsed = text;
		}
		return { status: res.status, body: parsed };
	}
	async function must(path, init, ...ok) {
		const res = await request(path, init);
		if (!ok.includes(res.status)) throw new Error(`${init?.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
		return res.body;
	}
	return {
		request,
		signup: (deviceName) => signup(baseUrl, label, deviceName),
		async login(user, deviceName) {
			const s = await must(
				"/v1/auth/login",
				{ method: "POST", json: { email: user.email, password: PASSWORD, device_name: deviceName } },
				200,
			);
			return { ...user, token: s.access_token };
		},
		ticket: (device) => must("/v1/sync/ticket", { method: "POST", token: device.token }, 200).then((t) => t.ticket),
		putTiny: (device, name) =>
			request(`/v1/files/content?${new URLSearchParams({ parent_id: device.rootId, name })}`, {
				method: "PUT",
				token: device.token,
				body: "x",
			}),
		mkdir: (device, parentId, name) => request("/v1/folders", { method: "POST", token: device.token, json: { parent_id: parentId, name } }),
		latest: (device) => must("/v1/changes/latest", { token: device.token }, 200).then((b) => b.cursor),
		root: (device) => request("/v1/nodes/root", { token: device.token }),
	};
}

/**
 * `count` file commits by `device` with `concurrency` in flight: new versions
 * of `files` small files in its root, each a PUT of `body(i)` (by default a
 * few fresh bytes: one block stored in R2, then one commit through the hub).
 * `until()` returning true stops it early (`count` may then be Infinity), and
 * `onCommit(at)` hears of each commit as its answer arrives.
 * @param {ReturnType<typeof client>} api
 * @param {{ token: string, rootId: string }} device
 * @param {number} count
 * @param {number} concurrency
 * @param {number} files
 * @param {{ body?: (i: number) => string | Uint8Array, until?: () => boolean, onCommit?: (at: number) => void }} [options]
 */
export async function fileCommitRate(api, device, count, concurrency, files, options = {}) {
	const { body = (i) => `version ${i}`, until = () => false, onCommit = () => undefined } = options;
	const latencies = [];
	let next = 0;
	const lane = async () => {
		for (let i = next++; i < count && !until(); i = next++) {
			const s = performance.now();
			const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: device.rootId, name: `v-${i % files}.txt` })}`, {
				method: "PUT",
				token: device.token,
				body: body(i),
			});
			if (res.status !== 200 && res.status !== 201) throw new Error(`PUT: ${res.status} ${JSON.stringify(res.body)}`);
			const at = performance.now();
			latencies.push(at - s);
			onCommit(at);
		}
	};
	const t0 = performance.now();
	await Promise.all(Array.from({ length: Math.min(concurrency, count) }, lane));
	const seconds = (performance.now() - t0) / 1000;
	return { count: latencies.length, files, seconds, perSecond: latencies.length / seconds, latency: summarize(latencies) };
}

/**
 * One connected device: records the arrival time of every `changes` frame.
 * Latency is measured on the client's clock only (performance.now()), so no
 * clock is compared across processes.
 */
export class Listener {
	constructor(ws) {
		this.ws = ws;
		this.frames = [];
		this.waiter = null;
		ws.on("message", (data) => {
			const at = performance.now();
			let frame;
			try {
				frame = JSON.parse(String(data));
			} catch {
				frame = { type: String(data) };
			}
			this.frames.push({ at, frame });
			if (this.waiter && this.waiter.match(frame)) {
				const w = this.waiter;
				this.waiter = null;
				w.resolve(at);
			}
		});
	}

	/** Resolves with the arrival time of the first frame satisfying `match` from now on. */
	next(match, timeoutMs) {
		return new Promise((resolve) => {
			const timer = setTimeout(() => {
				this.waiter = null;
				resolve(NaN);
			}, timeoutMs);
			this.waiter = {
				match,
				resolve: (at) => {
					clearTimeout(timer);
					resolve(at);
				},
			};
		});
	}
}

export async function dial(baseUrl, ticket) {
	const ws = new WebSocket(`${baseUrl.replace(/^http/, "ws")}/v1/sync/ws?ticket=${encodeURIComponent(ticket)}`, {
		perMessageDeflate: false,
	});
	const listener = new Listener(ws);
	await opened(ws, 30_000);
	return listener;
}

/**
 * Resolves once `ws` is open; rejects when the upgrade is refused, fails, or takes longer than `timeoutMs`.
 * @param {WebSocket} ws
 * @param {number} timeoutMs
 */
export function opened(ws, timeoutMs) {
	return new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error("WebSocket open timed out")), timeoutMs);
		ws.once("open", () => {
			clearTimeout(timer);
			resolve();
		});
		ws.once("unexpected-response", (_req, res) => {
			clearTimeout(timer);
			reject(new Error(`upgrade refused: ${res.statusCode}`));
		});
		ws.once("error", (err) => {
			clearTimeout(timer);
			reject(err);
		});
	});
}
