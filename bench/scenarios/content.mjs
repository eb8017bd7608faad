// PUT and GET /v1/files/content of 90 MiB beside a raw R2 put and get of the
// same bytes, with the runtime's CPU and memory; the uploads again on a stack
// with wrangler dev's local trace collector on.
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { cpuDuring, inspectIsolate, sampleIsolate, sampleMemory } from "../lib/proc.mjs";
import { expectStatus, signup, sleep } from "../lib/http.mjs";

/**
 * @param {import("../lib/stack.mjs").Context} ctx
 */
export async function measure(ctx) {
	/** 90 MiB: the largest round size under the 100 MB request limit. */
	const bytes = ctx.quick ? 8 * 1024 * 1024 : 90 * 1024 * 1024;
	const runs = ctx.quick ? 2 : 7;
	const tracedRuns = ctx.quick ? 1 : 3;
	const log = (line) => ctx.log(`content: ${line}`);

	const stack = await ctx.startStack();
	const user = await signup(stack.url, "content");
	const runtime = stack.procs.find((p) => p.role === "runtime");
	const isolate = await inspectIsolate(runtime.pid, "core:user:drive-api");
	if (isolate === null) log("the drive-api isolate's inspector is not reachable; isolate memory is skipped");
	const probe = { procs: stack.procs, isolate: null };
	let figures;
	try {
		await warmUp(user);
		await sleep(1000);
		// The runtime process grows by ~90 MB on its first large request
		// whatever handles it, a raw put with no Drive code on the path too,
		// so one raw put of the same size primes it before the rounds, and
		// its rise is reported on its own (bench/README.md, "Memory").
		log(`priming the runtime with one raw put of ${mib(bytes)}`);
		const primer = await measure1(probe, () => putRaw(user, "runtime-primer", freshFile(bytes).data));
		await sleep(1000);
		log(`uploads (${runs} × ${mib(bytes)}, content, raw, raw as 1 MiB objects)`);
		const uploads = await uploadRounds(user, { ...probe, isolate }, { bytes, runs, name: "random", rawBlocks: true, log });
		const last = uploads.at(-1);
		const dedup = await measure1(probe, () => putContent(user, "random-again.bin", last.file.data, last.file.sha256));
		log(`dedup re-upload: ${seconds(dedup.ms)}`);
		log(`downloads (${runs} × ${mib(bytes)}, content and raw)`);
		const downloads = [];
		for (let run = 1; run <= runs; run++) {
			const content = await measure1(probe, () => drain(`${stack.url}/v1/files/${uploads[0].nodeId}/content`, user.token, bytes));
			const raw = await measure1(probe, () => drain(`${stack.url}/_bench/raw/random-1`, null, bytes));
			downloads.push({ run, content, raw });
			log(`download run ${run}: content ${seconds(content.ms)}, raw ${seconds(raw.ms)}`);
		}
		figures = { bytes, primer, uploads: uploads.map(({ file: _file, ...round }) => round), dedup, downloads };
	} finally {
		isolate?.close();
		await stack.stop();
	}

	log("the same uploads with wrangler dev's local trace collector on");
	const traced = await ctx.startStack({ localTraces: true });
	try {
		const tracedUser = await signup(traced.url, "content-traced");
		await warmUp(tracedUser);
		await putRaw(tracedUser, "runtime-primer", freshFile(bytes).data);
		const rounds = await uploadRounds(
			tracedUser,
			{ procs: traced.procs, isolate: null },
			{ bytes, runs: tracedRuns, name: "traced", rawBlocks: false, log },
		);
		figures.traced = rounds.map(({ file: _file, ...round }) => round);
	} finally {
		await traced.stop();
	}
	return figures;
}

/**
 * Upload rounds: each sends fresh random bytes through PUT content, then the
 * same bytes through the raw put (and, with `rawBlocks`, as raw 1 MiB
 * objects). Interleaving makes drift (a busy machine, the growing local R2
 * store) hit both alike; content goes first so that the first round's
 * memory figure starts from a runtime that has not yet seen a large request.
 */
async function uploadRounds(user, probe, { bytes, runs, name, rawBlocks, log }) {
	const rounds = [];
	for (let run = 1; run <= runs; run++) {
		const file = freshFile(bytes);
		await sleep(500);
		const content = await measure1(probe, () => putContent(user, `${name}-${run}.bin`, file.data, file.sha256));
		await sleep(500);
		const raw = await measure1({ ...probe, isolate: null }, () => putRaw(user, `${name}-${run}`, file.data));
		let blocks = null;
		if (rawBlocks) {
			await sleep(500);
			blocks = await measure1({ ...probe, isolate: null }, () => putRaw(user, `${name}-${run}`, file.data, "raw-blocks"));
		}
		rounds.push({ run, content, raw, rawBlocks: blocks, nodeId: content.result.id, file });
		log(
			`${name} upload run ${run}: content ${seconds(content.ms)}, raw ${seconds(raw.ms)}${blocks ? `, raw as 1 MiB objects ${seconds(blocks.ms)}` : ""}`,
		);
	}
	return rounds;
}

/**
 * Measures one request: wall time, CPU time of each workerd process, their
 * RSS (sampled every 20 ms) and, when available, the drive-api isolate's
 * heap and buffers. Starts after `sync`, so that no request pays for the
 * previous one's disk write-back (bench/README.md, "Sync before measuring").
 */
async function measure1({ procs, isolate }, fn) {
	spawnSync("sync");
	const rss = sampleMemory(procs);
	const iso = sampleIsolate(isolate);
	const t0 = performance.now();
	const { result, cpu } = await cpuDuring(procs, fn);
	const ms = performance.now() - t0;
	const memory = rss.stop();
	return { ms, cpu, memory, isolate: await iso.stop(), result };
}

/**
 * First requests pay for module instantiation, JIT and lazy setup (key
 * ring, R2 and D1 connections), which is not what we measure: one 1 MiB
 * upload, raw put and download go first.
 */
async function warmUp(user) {
	const warm = freshFile(1024 * 1024);
	const node = await putContent(user, "warm-up.bin", warm.data, warm.sha256);
	await putRaw(user, "warm-up", warm.data);
	await (await fetch(`${user.base}/v1/files/${node.id}/content`, { headers: { Authorization: `Bearer ${user.token}` } })).arrayBuffer();
}

/** Fresh random bytes and their SHA-256: never seen by the service, so nothing deduplicates. */
function freshFile(bytes) {
	const data = randomBytes(bytes);
	return { data, sha256: createHash("sha256").update(data).digest("hex") };
}

/** PUT content; returns the node. Checks size and content hash so a fast but wrong upload cannot pass. */
async function putContent(user, name, data, sha256) {
	const params = new URLSearchParams({ parent_id: user.rootId, name });
	const res = await fetch(`${user.base}/v1/files/content?${params}`, {
		method: "PUT",
		headers: { Authorization: `Bearer ${user.token}`, "Content-Type": "application/octet-stream" },
		body: data,
	});
	await expectStatus(res, `PUT content ${name}`, 200, 201);
	const { node } = await res.json();
	if (node.size !== data.byteLength || node.content_hash !== sha256)
		throw new Error(`PUT content ${name}: stored ${node.size} bytes hashing ${node.content_hash}`);
	return { id: node.id };
}

/**
 * The baselines: `raw` is one R2 put of the body; `raw-blocks` stores the
 * same bytes as 1 MiB R2 objects and nothing else (the block layout's
 * storage cost).
 */
async function putRaw(user, key, data, route = "raw") {
	const res = await fetch(`${user.base}/_bench/${route}/${key}`, { method: "PUT", body: data });
	await expectStatus(res, `PUT ${route} ${key}`, 200);
	const { size } = await res.json();
	if (size !== data.byteLength) throw new Error(`PUT ${route} ${key}: stored ${size} bytes`);
}

/** GETs `url` and drains the body, checking its length (the bytes are not kept). */
async function drain(url, token, bytes) {
	const res = await fetch(url, token === null ? {} : { headers: { Authorization: `Bearer ${token}` } });
	await expectStatus(res, `GET ${url}`, 200);
	let received = 0;
	for await (const piece of res.body) received += piece.byteLength;
	if (received !== bytes) throw new Error(`GET ${url}: received ${received} bytes`);
}

const seconds = (ms) => `${(ms / 1000).toFixed(2)} s`;
const mib = (bytes) => `${bytes / 1024 / 1024} MiB`;
