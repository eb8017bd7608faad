// HTTP helpers shared by the scenarios: status checks, fresh users, a pool, node:http requests.
import { randomBytes } from "node:crypto";
import { request } from "node:http";

export const PASSWORD = "correct horse battery staple";

/**
 * Throws with the answer's status and the start of its body unless the status is one of `statuses`.
 * @param {Response} res
 * @param {string} what
 * @param {...number} statuses
 */
export async function expectStatus(res, what, ...statuses) {
	if (statuses.includes(res.status)) return;
	throw new Error(`${what}: HTTP ${res.status} ${(await res.text()).slice(0, 500)}`);
}

/**
 * Signs up a fresh user and reads its root folder. `token` is the current
 * access token; `freshToken()` refreshes it first when it is about to
 * expire (a 10 GiB upload outlives one).
 * @param {string} base the stack's URL
 * @param {string} [label] part of the email address, for the logs
 * @param {string} [deviceName]
 */
export async function signup(base, label = "bench", deviceName = "bench") {
	const email = `bench-${label}-${Date.now()}-${randomBytes(4).toString("hex")}@example.com`;
	const res = await fetch(`${base}/v1/auth/signup`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ email, password: PASSWORD, device_name: deviceName }),
	});
	await expectStatus(res, "signup", 201);
	const body = await res.json();
	let refresh = body.refresh_token;
	let expiresAt = Date.now() + body.expires_in * 1000;
	const root = await fetch(`${base}/v1/nodes/root`, { headers: { Authorization: `Bearer ${body.access_token}` } });
	await expectStatus(root, "GET /v1/nodes/root", 200);
	const user = {
		base,
		email,
		userId: body.user.id,
		rootId: (await root.json()).id,
		token: body.access_token,
		async freshToken() {
			if (Date.now() > expiresAt - 120_000) {
				const r = await fetch(`${base}/v1/auth/refresh`, {
					method: "POST",
					headers: { "Content-Type": "application/json" },
					body: JSON.stringify({ refresh_token: refresh }),
				});
				await expectStatus(r, "refresh", 200);
				const next = await r.json();
				user.token = next.access_token;
				refresh = next.refresh_token;
				expiresAt = Date.now() + next.expires_in * 1000;
			}
			return user.token;
		},
	};
	return user;
}

/**
 * Runs `count` tasks with at most `width` in flight; resolves with their results in order.
 * @template T
 * @param {number} count
 * @param {number} width
 * @param {(i: number) => Promise<T>} task
 */
export async function pool(count, width, task) {
	let next = 0;
	const results = new Array(count);
	await Promise.all(
		Array.from({ length: Math.min(width, count) }, async () => {
			for (;;) {
				const i = next++;
				if (i >= count) return;
				results[i] = await task(i);
			}
		}),
	);
	return results;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * One request through node:http's `agent` (cheaper per request than fetch,
 * which matters when the client shares the cores with the stack); resolves
 * with the status and the whole answer. `onSocket` hears of the socket each
 * request goes out on; a request with no answer after `timeoutMs` fails.
 * @param {{ agent: import("node:http").Agent, host: string, port: number, method: string, path: string, headers: Record<string, string | number>, payload: Buffer | null, timeoutMs?: number, onSocket?: (socket: import("node:net").Socket) => void }} options
 * @returns {Promise<{ status: number, body: Buffer }>}
 */
export function send({ agent, host, port, method, path, headers, payload, timeoutMs = 0, onSocket }) {
	return new Promise((done, fail) => {
		const req = request({ agent, host, port, method, path, headers }, (res) => {
			const pieces = [];
			res.on("data", (piece) => pieces.push(piece));
			res.on("error", fail);
			res.on("end", () => done({ status: res.statusCode ?? 0, body: Buffer.concat(pieces) }));
		});
		if (onSocket) req.on("socket", onSocket);
		if (timeoutMs > 0) req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: no answer in ${timeoutMs} ms`)));
		req.on("error", fail);
		req.end(payload);
	});
}
