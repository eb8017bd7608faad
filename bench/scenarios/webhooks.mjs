// Webhooks against a real local stack (wrangler dev, both workers, local
// Queues), delivering to a receiver in this process on 127.0.0.1 (the stack
// runs with WEBHOOK_ALLOW_LOOPBACK=true): commit → webhook latency beside
// commit → WebSocket frame for the same commits; delivered events per second
// to one endpoint from a burst of changes, beside the rate the burst was
// journalled at; and commits per second of a user with 10 enabled endpoints
// beside one with none, paired.
import { createServer } from "node:http";
import { performance } from "node:perf_hooks";
import { cpuMsOf } from "../lib/proc.mjs";
import { pairedRatio, summarize } from "../lib/stats.mjs";
import { client, dial, fileCommitRate } from "../lib/sync-client.mjs";

const DEFAULTS = {
	/** Commits whose webhook and WebSocket frame are timed, one at a time. */
	latencySamples: 200,
	warmup: 20,
	/** Folders created at once (POST /v1/folders/batch, 1,000 a request) for the delivery rate. */
	burst: 3000,
	/** Rounds of the commit part; each runs the users A B B A (or B A A B), so a steady drift cancels within the round. */
	commitRounds: 6,
	/** Commits of each of a round's four legs. */
	commits: 300,
	/** Commits each user makes before the rounds: workerd's JIT warms up over the first thousand or so. */
	commitWarmup: 1500,
	concurrency: 16,
	files: 200,
	endpoints: 10,
};

/** Fewer samples and commits: a check that every path runs, not figures. */
const QUICK = { latencySamples: 20, warmup: 5, burst: 300, commitRounds: 2, commits: 60, commitWarmup: 60 };

/** Hang guard for one awaited delivery; a miss is recorded, not waited for. */
const WAIT_MS = 60_000;

/** The receiver: records when each delivery arrived (this process's clock), per path. */
function startReceiver() {
	const arrivals = new Map();
	const waiters = new Map();
	let counts = new Map();
	const countWaiters = [];
	const server = createServer((req, res) => {
		const chunks = [];
		req.on("data", (c) => chunks.push(c));
		req.on("end", () => {
			const at = performance.now();
			res.writeHead(200);
			res.end();
			const path = req.url ?? "/";
			counts.set(path, (counts.get(path) ?? 0) + 1);
			for (const w of [...countWaiters]) if ((counts.get(w.path) ?? 0) >= w.count) w.resolve(at);
			let event;
			try {
				event = JSON.parse(Buffer.concat(chunks).toString("utf8"));
			} catch {
				return;
			}
			const key = `${path} ${event.data?.node?.name ?? ""}`;
			arrivals.set(key, at);
			waiters.get(key)?.(at);
			waiters.delete(key);
		});
	});
	return new Promise((resolve) =>
		server.listen(0, "127.0.0.1", () => {
			const base = `http://127.0.0.1:${server.address().port}`;
			resolve({
				url: (path) => `${base}${path}`,
				/** Resolves with the arrival time of the delivery on `path` about the node called `name` (NaN past the guard). */
				next(path, name) {
					const key = `${path} ${name}`;
					if (arrivals.has(key)) return Promise.resolve(arrivals.get(key));
					return new Promise((done) => {
						const timer = setTimeout(() => done(NaN), WAIT_MS);
						waiters.set(key, (at) => {
							clearTimeout(timer);
							done(at);
						});
					});
				},
				/** Resolves when `path` has had `count` deliveries, with the time of the last. */
				count(path, count, guardMs = 600_000) {
					if ((counts.get(path) ?? 0) >= count) return Promise.resolve(performance.now());
					return new Promise((done, fail) => {
						const timer = setTimeout(
							() => fail(new Error(`${path}: ${counts.get(path) ?? 0} of ${count} deliveries (hang guard)`)),
							guardMs,
						);
						countWaiters.push({
							path,
							count,
							resolve: (at) => {
								clearTimeout(timer);
								countWaiters.splice(
									countWaiters.findIndex((w) => w.path === path && w.count === count),
									1,
								);
								done(at);
							},
						});
					});
				},
				delivered: (path) => counts.get(path) ?? 0,
				reset() {
					counts = new Map();
				},
				close: () => new Promise((r) => server.close(r)),
			});
		}),
	);
}

/**
 * The three parts on one fresh stack; `options` overrides DEFAULTS.
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx, options = {}) {
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options };
	const log = (line) => ctx.log(`webhooks: ${line}`);
	const stack = await ctx.startStack({ vars: { WEBHOOK_ALLOW_LOOPBACK: "true" } });
	const receiver = await startReceiver();
	const api = client(stack.url, "webhooks");
	const register = async (user, path, eventTypes) => {
		const res = await api.request("/v1/webhooks", {
			method: "POST",
			token: user.token,
			json: { url: receiver.url(path), ...(eventTypes && { event_types: eventTypes }) },
		});
		if (res.status !== 201) throw new Error(`POST /v1/webhooks: ${res.status} ${JSON.stringify(res.body)}`);
	};
	const put = async (user, name, body) => {
		const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: user.rootId, name })}`, {
			method: "PUT",
			token: user.token,
			body,
		});
		if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${name}: ${res.status} ${JSON.stringify(res.body)}`);
	};
	try {
		// ---- latency: one commit at a time, its webhook and its WebSocket frame timed from its answer
		log(`latency: ${o.latencySamples} commits`);
		const user = await api.signup("bench webhooks latency");
		await register(user, "/latency", ["file.created"]);
		const device = await dial(stack.url, await api.ticket(user));
		const hook = [];
		const sent = [];
		const frame = [];
		const commit = [];
		let missed = 0;
		for (let i = -o.warmup; i < o.latencySamples; i++) {
			const name = `latency-${i + o.warmup}.txt`;
			const framed = device.next((f) => f.type === "changes", WAIT_MS);
			const arrived = receiver.next("/latency", name);
			const t0 = performance.now();
			await put(user, name, `sample ${i}`);
			const answered = performance.now();
			const [hookAt, frameAt] = await Promise.all([arrived, framed]);
			if (i < 0) continue;
			if (Number.isNaN(hookAt)) missed++;
			else {
				sent.push(hookAt - t0);
				hook.push(hookAt - answered);
			}
			if (!Number.isNaN(frameAt)) frame.push(frameAt - answered);
			commit.push(answered - t0);
		}
		device.ws.close();

		// ---- delivery rate: a burst of changes already journalled, delivered to one endpoint
		log(`delivery rate: ${o.burst} folders at once`);
		const burster = await api.signup("bench webhooks burst");
		await register(burster, "/burst", ["folder.created"]);
		const t0 = performance.now();
		for (let made = 0; made < o.burst; made += 1000) {
			const names = Array.from({ length: Math.min(1000, o.burst - made) }, (_, i) => `f-${made + i}`);
			const res = await api.request("/v1/folders/batch", {
				method: "POST",
				token: burster.token,
				json: { parent_id: burster.rootId, names },
			});
			if (res.status !== 200 && res.status !== 201) throw new Error(`POST /v1/folders/batch: ${res.status} ${JSON.stringify(res.body)}`);
		}
		const journalled = performance.now();
		const firstAt = await receiver.count("/burst", 1);
		const lastAt = await receiver.count("/burst", o.burst);
		const burst = {
			events: o.burst,
			journalledPerSecond: o.burst / ((journalled - t0) / 1000),
			deliveredPerSecond: (o.burst - 1) / ((lastAt - firstAt) / 1000),
			endToEndPerSecond: o.burst / ((lastAt - t0) / 1000),
			firstMs: firstAt - t0,
		};

		// ---- commits: a user with 10 enabled endpoints beside one with none
		log(`commits: ${o.commitRounds} rounds of ${o.commits} commits a leg`);
		const runtime = stack.procs.find((p) => p.role === "runtime");
		const users = {
			none: await api.signup("bench webhooks none"),
			// Endpoints that want none of these events: the hub kicks and the fan-out reads, but nothing is delivered.
			filtered: await api.signup("bench webhooks filtered"),
			ten: await api.signup("bench webhooks ten"),
		};
		for (let i = 0; i < o.endpoints; i++) await register(users.filtered, `/filtered-${i}`, ["webhook.test"]);
		for (let i = 0; i < o.endpoints; i++) await register(users.ten, `/ten-${i}`);
		let tenCommits = 0;
		const drain = async () => {
			for (let i = 0; i < o.endpoints; i++) await receiver.count(`/ten-${i}`, tenCommits);
		};
		for (const side of Object.keys(users)) await fileCommitRate(api, users[side], o.commitWarmup, o.concurrency, o.files);
		tenCommits += o.commitWarmup;
		await drain();
		const rounds = [];
		for (let r = 0; r < o.commitRounds; r++) {
			const legs = { none: [], filtered: [], ten: [] };
			// A palindrome of legs, reversed every other round: a steady drift cancels within the round.
			const forward = ["none", "filtered", "ten"];
			const backward = ["ten", "filtered", "none"];
			const order = r % 2 === 0 ? [...forward, ...backward] : [...backward, ...forward];
			for (const side of order) {
				const cpu0 = cpuMsOf(runtime.pid);
				const t0 = performance.now();
				const result = await fileCommitRate(api, users[side], o.commits, o.concurrency, o.files);
				const wall = performance.now() - t0;
				const leg = {
					perSecond: result.perSecond,
					cpuPerCommit: (cpuMsOf(runtime.pid) - cpu0) / result.count,
					busy: (cpuMsOf(runtime.pid) - cpu0) / wall,
				};
				if (side === "ten") {
					tenCommits += result.count;
					const d0 = performance.now();
					const dc0 = cpuMsOf(runtime.pid);
					await drain();
					leg.drainMs = performance.now() - d0;
					leg.drainCpuPerCommit = (cpuMsOf(runtime.pid) - dc0) / result.count;
				}
				legs[side].push(leg);
			}
			const mean = (list, key) => list.reduce((a, v) => a + v[key], 0) / list.length;
			const round = Object.fromEntries(
				Object.entries(legs).map(([side, list]) => [
					side,
					{
						perSecond: mean(list, "perSecond"),
						cpuPerCommit: mean(list, "cpuPerCommit"),
						busy: mean(list, "busy"),
						...(side === "ten" && { drainMs: Math.max(...list.map((l) => l.drainMs)), drainCpuPerCommit: mean(list, "drainCpuPerCommit") }),
					},
				]),
			);
			rounds.push(round);
			log(
				`round ${r + 1}: ${round.none.perSecond.toFixed(0)}/s without, ${round.filtered.perSecond.toFixed(0)}/s with ${o.endpoints} filtered out, ${round.ten.perSecond.toFixed(0)}/s with ${o.endpoints} endpoints`,
			);
		}
		const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
		const per = (side, key) => rounds.map((r) => r[side][key]);
		return {
			settings: { ...o },
			latency: { sent: summarize(sent), webhook: summarize(hook), frame: summarize(frame), commit: summarize(commit), missed },
			burst,
			commits: {
				rounds: rounds.length,
				ratio: pairedRatio(
					rounds,
					(r) => r.ten.perSecond,
					(r) => r.none.perSecond,
				),
				filteredRatio: pairedRatio(
					rounds,
					(r) => r.filtered.perSecond,
					(r) => r.none.perSecond,
				),
				perSecond: { none: per("none", "perSecond"), filtered: per("filtered", "perSecond"), ten: per("ten", "perSecond") },
				cpuPerCommit: {
					none: median(per("none", "cpuPerCommit")),
					filtered: median(per("filtered", "cpuPerCommit")),
					ten: median(per("ten", "cpuPerCommit")),
				},
				busy: { none: median(per("none", "busy")), filtered: median(per("filtered", "busy")), ten: median(per("ten", "busy")) },
				drainMs: per("ten", "drainMs"),
				drainCpuPerCommit: median(per("ten", "drainCpuPerCommit")),
				deliveries: tenCommits * o.endpoints,
			},
		};
	} finally {
		await receiver.close();
		await stack.stop();
	}
}
