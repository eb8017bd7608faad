// Sharing benchmark against a real local stack (wrangler dev, both workers):
// how long a share member's devices take to hear of an owner's change (10
// members × 2 WebSocket devices, beside the owner's own devices hearing of
// the same commit), and what an editor's commit through the owner's hub
// costs beside the owner's own commit into the same folder. Every member,
// the editor included, lives on a shard other than the owner's.
import { randomBytes } from "node:crypto";
import { loadavg } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { bundle } from "../lib/bundle.mjs";
import { sleep } from "../lib/http.mjs";
import { cpuDuring } from "../lib/proc.mjs";
import { median, pairedRatio, summarize } from "../lib/stats.mjs";
import { client, dial } from "../lib/sync-client.mjs";

const DEFAULTS = {
	members: 10,
	devicesPerMember: 2,
	/** Owner changes whose fan-out is timed. */
	changes: 150,
	/** Then owner changes into a folder nobody shares, the same way: the CPU baseline. */
	privateChanges: 30,
	/** Then owner changes after each of which the members' first devices fetch `GET /v1/changes`, as clients do. */
	fetchChanges: 50,
	/** Commits ≥ this far apart, so that no hub's coalescing (4 frames/s) merges two. */
	spacingMs: 300,
	/** Owner/editor pairs of commits, in alternating order (each round also has an owner's commit into an unshared folder). */
	pairs: 100,
	/** Pause after each commit of a pair once every member device heard of it, so that no fan-out overlaps the next commit. */
	pairGapMs: 50,
	/** Bytes of each commit of a pair. */
	pairBytes: 4096,
	frameTimeoutMs: 5000,
};

/** Fewer changes and pairs: a check that every path runs, not figures. */
const QUICK = { members: 3, changes: 20, privateChanges: 10, fetchChanges: 10, pairs: 20 };

/** The journal position a cursor names (src/shared/journal.ts): `c1_` + base64url of `<userId>:<seq>`. */
function seqOf(cursor) {
	const text = Buffer.from(cursor.slice(3), "base64url").toString("utf8");
	return Number(text.slice(text.lastIndexOf(":") + 1));
}

/** Every entry of `device`'s journal after `cursor`. */
async function journalAfter(api, device, cursor) {
	const entries = [];
	for (;;) {
		const res = await api.request(`/v1/changes?${new URLSearchParams({ cursor, limit: "1000" })}`, { token: device.token });
		if (res.status !== 200) throw new Error(`GET /v1/changes: ${res.status} ${JSON.stringify(res.body)}`);
		entries.push(...res.body.entries);
		cursor = res.body.cursor;
		if (!res.body.has_more) return { entries, cursor };
	}
}

/**
 * Users on shards other than `avoid`'s: placement is FNV-1a of the user id
 * (workers/api/services/placement.ts, bundled from the snapshot), so signing
 * up again lands elsewhere.
 */
async function usersAwayFrom(api, placeUser, shards, avoid, count, label) {
	const users = [];
	let signups = 0;
	while (users.length < count) {
		if (++signups > count * 20) throw new Error(`could not place ${count} users off shard ${avoid}`);
		const user = await api.signup(`${label} ${users.length}`);
		const shard = placeUser(user.userId, shards);
		if (shard !== avoid) users.push({ ...user, shard });
	}
	return { users, signups };
}

/** A device of `user` with its own login and sync socket. */
async function socketDevice(api, user, name) {
	const device = await api.login(user, name);
	const listener = await dial(user.base, await api.ticket(device));
	return { ...device, listener };
}

/**
 * Runs the sharing benchmarks on a fresh stack; `options` overrides DEFAULTS.
 * @param {import("../lib/stack.mjs").Context} ctx
 * @param {Partial<typeof DEFAULTS>} [options]
 */
export async function measure(ctx, options = {}) {
	const o = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}), ...options };
	const log = (line) => ctx.log(`sharing: ${line}`);
	const { placeUser } = await bundle(ctx.tree, "workers/api/services/placement.ts", join(ctx.tmp, "placement.mjs"), "neutral");
	const { d1Bindings } = await import(pathToFileURL(join(ctx.tree, "scripts", "local-stack.mjs")).href);
	const shards = d1Bindings().filter((b) => b.startsWith("SHARD_")).length;
	const stack = await ctx.startStack();
	const sockets = [];
	try {
		const api = client(stack.url, "sharing");
		const figures = { settings: { ...o, shards }, load: { start: loadavg()[0] } };

		// -- the owner, its committing device (no socket) and two devices with sockets --
		const owner = await api.signup("owner laptop");
		owner.shard = placeUser(owner.userId, shards);
		const ownerDevices = [];
		for (let d = 0; d < o.devicesPerMember; d++) ownerDevices.push(await socketDevice(api, owner, `owner device ${d}`));
		sockets.push(...ownerDevices.map((d) => d.listener));

		log(`signing up ${o.members} members off the owner's shard ${owner.shard} (of ${shards})`);
		const placed = await usersAwayFrom(api, placeUser, shards, owner.shard, o.members, "member");
		const members = placed.users;
		figures.placement = { owner: owner.shard, members: members.map((m) => m.shard), signups: placed.signups };

		const folder = await api.mkdir(owner, owner.rootId, "Team");
		if (folder.status !== 201) throw new Error(`mkdir: ${folder.status}`);
		const folderId = folder.body.id;
		const shared = await api.request("/v1/shares", {
			method: "POST",
			token: owner.token,
			json: { node_id: folderId, members: members.map((m, i) => ({ email: m.email, role: i === 0 ? "editor" : "viewer" })) },
		});
		if (shared.status !== 201) throw new Error(`POST /v1/shares: ${shared.status} ${JSON.stringify(shared.body)}`);

		// Each member's mount appears through its own journal: wait for it, then connect the member's devices.
		log("waiting for every member's mount");
		for (const member of members) {
			for (let tries = 0; ; tries++) {
				const res = await api.request("/v1/shared-with-me", { token: member.token });
				const item = res.body?.items?.find((s) => s.owner.id === owner.userId);
				if (item?.mount_id) {
					member.mountId = item.mount_id;
					member.role = item.role;
					break;
				}
				if (tries > 100) throw new Error(`no mount for ${member.email}: ${JSON.stringify(res.body)}`);
				await sleep(100);
			}
			member.devices = [];
			for (let d = 0; d < o.devicesPerMember; d++) member.devices.push(await socketDevice(api, member, `member device ${d}`));
			sockets.push(...member.devices.map((d) => d.listener));
		}
		await sleep(500);

		log(`${o.changes} owner changes, ${o.spacingMs} ms apart, to ${sockets.length} sockets`);
		const measured = await cpuDuring(stack.procs, () =>
			fanout(api, o, owner, ownerDevices, members, folderId, { changes: o.changes, fetch: false, tag: "change" }),
		);
		figures.fanout = { ...measured.result, runtimeCpuMsPerChange: measured.cpu.runtime / o.changes };
		const f = figures.fanout;
		log(
			`member device p50 ${f.member.fromSend.p50.toFixed(1)} ms, p99 ${f.member.fromSend.p99.toFixed(1)} ms from the PUT's send; owner device p50 ${f.owner.fromSend.p50.toFixed(1)} ms (missed ${f.missed}); runtime CPU ${f.runtimeCpuMsPerChange.toFixed(1)} ms a change`,
		);
		const privateFolder = await api.mkdir(owner, owner.rootId, "Private");
		if (privateFolder.status !== 201) throw new Error(`mkdir: ${privateFolder.status}`);
		log(`${o.privateChanges} owner changes into a folder nobody shares`);
		const alone = await cpuDuring(stack.procs, () => privateChanges(api, o, owner, privateFolder.body.id));
		figures.privateChanges = { ...alone.result, runtimeCpuMsPerChange: alone.cpu.runtime / o.privateChanges };
		log(`${o.fetchChanges} more, each member's first device fetching GET /v1/changes on its frame`);
		figures.fetching = await fanout(api, o, owner, ownerDevices, members, folderId, {
			changes: o.fetchChanges,
			fetch: true,
			tag: "fetched",
		});

		const editor = members.find((m) => m.role === "editor");
		log(`${o.pairs} owner/editor pairs of ${o.pairBytes}-byte PUTs, alternating`);
		const memberListeners = members.flatMap((m) => m.devices.map((d) => d.listener));
		figures.commits = await pairs(api, o, owner, editor, folderId, privateFolder.body.id, memberListeners);
		const c = figures.commits;
		log(
			`owner p50 ${c.owner.p50.toFixed(1)} ms, editor p50 ${c.editor.p50.toFixed(1)} ms, paired ratio ${c.ratio.median.toFixed(2)}; owner into an unshared folder p50 ${c.private.p50.toFixed(1)} ms`,
		);
		figures.load.end = loadavg()[0];
		return figures;
	} finally {
		for (const s of sockets) s.ws.terminate();
		await stack.stop();
	}
}

/**
 * The owner's committing device PUTs a tiny new file into the shared folder
 * `changes` times; every socket of the owner and of the members records its
 * frames. Afterwards each user's journal says which seq the change got there,
 * and a device saw the change when the first `changes` frame with a cursor at
 * or past that seq arrived. With `fetch`, the first device of each member also
 * fetches `GET /v1/changes` on each frame, as a client does, until the entry
 * is there: that load lands while the owner's PUT is still answering, so it
 * runs as its own phase.
 */
async function fanout(api, o, owner, ownerDevices, members, folderId, { changes, fetch, tag }) {
	const users = [{ user: owner, devices: ownerDevices, owner: true }, ...members.map((m) => ({ user: m, devices: m.devices }))];
	const startCursors = await Promise.all(users.map((u) => api.latest(u.user)));
	const fetchCursors = members.map((_, i) => startCursors[i + 1]);
	const commits = [];
	const fetched = [];
	for (let s = 0; s < changes; s++) {
		const started = performance.now();
		const name = `${tag}-${s}.txt`;
		const waits = users.flatMap((u) =>
			u.devices.map((d) => {
				const last = d.listener.frames.findLast((f) => f.frame.type === "changes")?.frame.cursor;
				return d.listener.next((f) => f.type === "changes" && f.cursor !== last, o.frameTimeoutMs);
			}),
		);
		const sent = performance.now();
		const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: folderId, name })}`, {
			method: "PUT",
			token: owner.token,
			body: randomBytes(16),
		});
		const answered = performance.now();
		if (res.status !== 201) throw new Error(`PUT: ${res.status} ${JSON.stringify(res.body)}`);
		commits.push({ name, sent, answered });
		// A member's first device fetches what its frame announced.
		const fetches = (fetch ? members : []).map(async (m, i) => {
			const at = await waits[(i + 1) * o.devicesPerMember];
			if (!Number.isFinite(at)) return;
			for (let tries = 0; tries < 20; tries++) {
				const page = await journalAfter(api, m.devices[0], fetchCursors[i]);
				fetchCursors[i] = page.cursor;
				if (page.entries.some((e) => e.node.name === name)) {
					const now = performance.now();
					fetched.push({ fromSend: now - sent, fromAnswer: now - answered, fromFrame: now - at });
					return;
				}
			}
		});
		await Promise.all([...waits, ...fetches]);
		const wait = o.spacingMs - (performance.now() - started);
		if (wait > 0) await sleep(wait);
	}
	await sleep(1000);

	// Which seq each change got in each user's journal, then when each device first had a frame covering it.
	const samples = { owner: { fromAnswer: [], fromSend: [] }, member: { fromAnswer: [], fromSend: [] } };
	const perChangeMax = [];
	const ownerFirst = [];
	const behindOwner = [];
	let missed = 0;
	for (const [u, { user, devices, owner: isOwner }] of users.entries()) {
		const { entries } = await journalAfter(api, user, startCursors[u]);
		const seqs = new Map(entries.filter((e) => e.kind === "created").map((e) => [e.node.name, e.seq]));
		const into = isOwner ? samples.owner : samples.member;
		for (const [c, commit] of commits.entries()) {
			const seq = seqs.get(commit.name);
			for (const d of devices) {
				const frame =
					seq === undefined
						? undefined
						: d.listener.frames.find((f) => f.at >= commit.sent && f.frame.type === "changes" && seqOf(f.frame.cursor) >= seq);
				if (!frame) {
					missed++;
					continue;
				}
				into.fromAnswer.push(frame.at - commit.answered);
				into.fromSend.push(frame.at - commit.sent);
				if (isOwner) ownerFirst[c] = Math.min(ownerFirst[c] ?? Infinity, frame.at);
				else {
					perChangeMax[c] = Math.max(perChangeMax[c] ?? -Infinity, frame.at - commit.sent);
					if (ownerFirst[c] !== undefined) behindOwner.push(frame.at - ownerFirst[c]);
				}
			}
		}
	}
	return {
		changes: commits.length,
		devices: users.reduce((n, u) => n + u.devices.length, 0),
		owner: { fromAnswer: summarize(samples.owner.fromAnswer), fromSend: summarize(samples.owner.fromSend) },
		member: { fromAnswer: summarize(samples.member.fromAnswer), fromSend: summarize(samples.member.fromSend) },
		lastMemberDevice: summarize(perChangeMax.filter(Number.isFinite)),
		behindOwner: summarize(behindOwner),
		answer: summarize(commits.map((c) => c.answered - c.sent)),
		fetched: {
			fromSend: summarize(fetched.map((x) => x.fromSend)),
			fromAnswer: summarize(fetched.map((x) => x.fromAnswer)),
			fromFrame: summarize(fetched.map((x) => x.fromFrame)),
		},
		missed,
	};
}

/** The owner's tiny commits into a folder nobody shares, as many and as far apart as the fan-out phase's. */
async function privateChanges(api, o, owner, privateId) {
	const answers = [];
	for (let s = 0; s < o.privateChanges; s++) {
		const started = performance.now();
		const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: privateId, name: `alone-${s}.txt` })}`, {
			method: "PUT",
			token: owner.token,
			body: randomBytes(16),
		});
		if (res.status !== 201) throw new Error(`PUT: ${res.status} ${JSON.stringify(res.body)}`);
		answers.push(performance.now() - started);
		await sleep(o.spacingMs - (performance.now() - started));
	}
	return { changes: answers.length, answer: summarize(answers) };
}

/**
 * Paired commits: the owner's PUT of `pairBytes` fresh bytes as a new file
 * into the shared folder, and the editor's into the same folder through its
 * mount, one right after the other, the order alternating each pair so that
 * drift hits both sides alike. A third PUT each round, the owner's into a
 * folder nobody shares, at a rotating place, shows what the fan-out costs
 * the owner's own commit.
 */
async function pairs(api, o, owner, editor, folderId, privateId, listeners) {
	const put = async (who, parentId, name) => {
		// A commit into the share is done once every member's devices heard of it.
		const heard = (parentId === privateId ? [] : listeners).map((l) => {
			const last = l.frames.findLast((f) => f.frame.type === "changes")?.frame.cursor;
			return l.next((f) => f.type === "changes" && f.cursor !== last, o.frameTimeoutMs);
		});
		const t0 = performance.now();
		const res = await api.request(`/v1/files/content?${new URLSearchParams({ parent_id: parentId, name })}`, {
			method: "PUT",
			token: who.token,
			body: randomBytes(o.pairBytes),
		});
		const took = performance.now() - t0;
		if (res.status !== 201) throw new Error(`PUT as ${who.email}: ${res.status} ${JSON.stringify(res.body)}`);
		await Promise.all(heard);
		await sleep(o.pairGapMs);
		return took;
	};
	const sides = {
		owner: (p) => put(owner, folderId, `owner-${p}.bin`),
		editor: (p) => put(editor, editor.mountId, `editor-${p}.bin`),
		private: (p) => put(owner, privateId, `private-${p}.bin`),
	};
	// A few unmeasured rounds first: the editor's path runs code the owner's has not run yet.
	for (let p = 0; p < 4; p++) for (const side of Object.values(sides)) await side(`warm-${p}`);
	const rounds = [];
	for (let p = 0; p < o.pairs; p++) {
		const order = p % 2 === 0 ? ["owner", "editor"] : ["editor", "owner"];
		order.splice(p % 3, 0, "private");
		const round = {};
		for (const side of order) round[side] = await sides[side](p);
		rounds.push(round);
	}
	const of = (side) => rounds.map((r) => r[side]);
	const editorOverOwner = pairedRatio(
		rounds,
		(r) => r.editor,
		(r) => r.owner,
	);
	const sharedOverPrivate = pairedRatio(
		rounds,
		(r) => r.owner,
		(r) => r.private,
	);
	return {
		pairs: rounds.length,
		owner: summarize(of("owner")),
		editor: summarize(of("editor")),
		private: summarize(of("private")),
		extra: summarize(rounds.map((r) => r.editor - r.owner)),
		ratio: { median: editorOverOwner.median, ofMedians: median(of("editor")) / median(of("owner")) },
		sharedOverPrivate: { median: sharedOverPrivate.median, ofMedians: median(of("owner")) / median(of("private")) },
	};
}
