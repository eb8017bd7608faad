/**
 * Issue 15's randomized interleaving property for the block collector
 * (docs/decisions/0017-block-collection.md): uploads, commits that
 * deduplicate onto blocks the collector is deleting, copies and purges run
 * between the steps of a sweep that dies at a generated step. No committed
 * version ever reads a missing block, and every garbage block is gone after
 * the next run.
 *
 * A step is one D1 query or batch, or one R2 call, that the sweep makes. The
 * sweep runs against the real bindings through wrappers that take its steps
 * one at a time, run the commands scheduled before each, and from the crash
 * step on throw instead: the process died, so its own cleanup fails too.
 * Commands go through the api worker; a staged PUT content and a copy go
 * through the services their routes run, with one call held, so that they
 * can span steps of the sweep. Nothing is timed: every step and command runs
 * in the generated order.
 */
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { blockObjectKey } from "../../src/shared/blocks";
import { runBatch } from "../../src/shared/db/batch";
import { openShard, shardAt, shardBinding, shardCount } from "../../src/shared/db/shards";
import { keyRing, putBlock } from "../../workers/api/services/block-store";
import { copyFile } from "../../workers/api/services/copy";
import {
	collectBlocks,
	enqueueCandidates,
	GC_CANDIDATES_PER_SHARD,
	settleTombstones,
	STALE_TOMBSTONE_MS,
	sweepShard,
} from "../../workers/api/services/gc";
import { ingestAndCommit } from "../../workers/api/services/ingest";
import { precheckCommit } from "../../workers/api/services/precheck";
import { concat } from "../support/bytes";
import { bytesEqual, call, expectError, expectJson, settlePurges, sha256, signup, type TestUser } from "./helpers";

/** Fixed, so that a failure replays: fast-check prints the seed and path of the failing run. */
const SEED = 0x15fc;
const RUNS = 200;

/** Users of the pool in each shard: a run picks two, in one shard or in two. */
const USERS_PER_SHARD = 2;

const QUOTA = 1e12;
const HOUR = 3_600_000;

// ---- the scenario ---------------------------------------------------------------

/** The kinds of step a sweep takes, in the order it takes them (named from their SQL or R2 call by {@link kindOf}). */
const STEP_KINDS = [
	"due",
	"check",
	"drop or queue again",
	"doom (home)",
	"doom (other)",
	"re-check",
	"uploaded times",
	"release",
	"delete",
	"record",
] as const;

type StepKind = (typeof STEP_KINDS)[number];

/** How many steps of each kind a sweep of a run's chunk takes at most, less one (four shards; one head per doomed block). */
const LAST_OF_KIND: Record<StepKind, number> = {
	due: 0,
	check: 3,
	"drop or queue again": 0,
	"doom (home)": 0,
	"doom (other)": 2,
	"re-check": 3,
	"uploaded times": 2,
	release: 3,
	delete: 0,
	record: 3,
};

/**
 * Where something happens in a run: before the sweep starts (stage 0),
 * before the `nth` step of a kind (or before the first step after it, if
 * the sweep takes fewer), after the sweep, or after the next run settled the
 * dead sweep's tombstones.
 */
interface Position {
	stage: number;
	nth: number;
}

const stageOf = (kind: StepKind) => STEP_KINDS.indexOf(kind) + 1;
const AFTER_THE_SWEEP = STEP_KINDS.length + 1;
const AFTER_THE_SETTLE = STEP_KINDS.length + 2;

const byPosition = (a: Position, b: Position) => a.stage - b.stage || a.nth - b.nth;

function describePosition({ stage, nth }: Position): string {
	if (stage === 0) return "before the sweep";
	if (stage === AFTER_THE_SWEEP) return "after the sweep";
	if (stage === AFTER_THE_SETTLE) return "after the next run settled";
	return `before ${STEP_KINDS[stage - 1]} #${nth}`;
}

type Who = 0 | 1;

/** A block as the run starts: who holds it (a committed file each), whether its object is stored, whether it is a candidate. */
interface BlockSetup {
	holders: readonly Who[];
	stored: boolean;
	queued: boolean;
}

type Command =
	/** An upload session listing `blocks`: created, its missing blocks sent, committed. */
	| { kind: "session"; user: Who; blocks: number[]; declare: boolean; at: Position[] }
	/** PUT content in one request: a new file, or a new version of one of the user's files. */
	| { kind: "put"; user: Who; block: number; file: number | null; at: Position[] }
	/** PUT content held between storing its block (after its pre-check read the gc clock) and its commit. */
	| { kind: "staged-put"; user: Who; block: number; at: Position[] }
	/** Deleting one of the user's files forever (trash, purge, the hub's purge run). */
	| { kind: "purge"; user: Who; file: number; at: Position[] }
	/** A server-side copy of one of the user's files, held between reading its source and its pre-check. */
	| { kind: "copy"; user: Who; file: number; at: Position[] };

interface Crash {
	at: StepKind;
	nth: number;
}

interface Scenario {
	/** Indices into the user pool; the first user's shard is the sweep's home. */
	users: [number, number];
	blocks: BlockSetup[];
	commands: Command[];
	/** Where the sweep dies: at the `nth` step of a kind (not at all if it takes fewer); null, it lives. */
	crash: Crash | null;
}

/** The `nth` step of a kind, for each kind `kinds` gives. */
const stepOf = (kinds: fc.Arbitrary<StepKind>): fc.Arbitrary<Crash> =>
	kinds.chain((kind) => fc.record({ at: fc.constant(kind), nth: fc.nat({ max: LAST_OF_KIND[kind] }) }));

/** Where a sweep may die: kinds a sweep takes only in some runs (it releases only what commands made it spare) weigh more. */
const crashPoint = stepOf(
	fc.oneof(
		...STEP_KINDS.map((kind) => ({
			arbitrary: fc.constant(kind),
			weight: kind === "release" ? 3 : kind === "drop or queue again" ? 2 : 1,
		})),
	),
);

// Every kind of step as likely, whatever its share of a sweep's steps; before the sweep often, to have old blocks in
// flight, and after the next run's settle often, to have clients that come back an hour later.
const position: fc.Arbitrary<Position> = fc.oneof(
	{ arbitrary: fc.constant({ stage: 0, nth: 0 }), weight: 3 },
	{ arbitrary: stepOf(fc.constantFrom(...STEP_KINDS)).map(({ at, nth }) => ({ stage: stageOf(at), nth })), weight: STEP_KINDS.length },
	{ arbitrary: fc.constant({ stage: AFTER_THE_SWEEP, nth: 0 }), weight: 1 },
	{ arbitrary: fc.constant({ stage: AFTER_THE_SETTLE, nth: 0 }), weight: 2 },
);
const positions = (n: number) => fc.array(position, { minLength: n, maxLength: n }).map((at) => at.sort(byPosition));

const who = fc.constantFrom<Who>(0, 1);
const blockIndex = fc.nat({ max: 3 });
const fileIndex = fc.nat({ max: 3 });

const holders = fc.constantFrom<readonly Who[]>([0], [1], [0, 1]);
const blockSetup: fc.Arbitrary<BlockSetup> = fc.oneof(
	// Garbage: stored, queued, nobody holds it.
	{ arbitrary: fc.constant({ holders: [], stored: true, queued: true }), weight: 3 },
	// Held and queued (another user's purge queued it): the sweep drops it.
	{ arbitrary: fc.record({ holders, stored: fc.constant(true), queued: fc.constant(true) }), weight: 2 },
	{ arbitrary: fc.record({ holders, stored: fc.constant(true), queued: fc.constant(false) }), weight: 1 },
	// Queued, its object already gone.
	{ arbitrary: fc.constant({ holders: [], stored: false, queued: true }), weight: 1 },
	// New: only a command may store it.
	{ arbitrary: fc.constant({ holders: [], stored: false, queued: false }), weight: 1 },
);

const command: fc.Arbitrary<Command> = fc.oneof(
	{
		arbitrary: fc.record({
			kind: fc.constant("session" as const),
			user: who,
			blocks: fc.array(blockIndex, { minLength: 1, maxLength: 2 }),
			declare: fc.boolean(),
			at: positions(3),
		}),
		weight: 3,
	},
	{
		arbitrary: fc.record({ kind: fc.constant("put" as const), user: who, block: blockIndex, file: fc.option(fileIndex), at: positions(1) }),
		weight: 2,
	},
	{ arbitrary: fc.record({ kind: fc.constant("staged-put" as const), user: who, block: blockIndex, at: positions(2) }), weight: 3 },
	{ arbitrary: fc.record({ kind: fc.constant("purge" as const), user: who, file: fileIndex, at: positions(1) }), weight: 2 },
	{ arbitrary: fc.record({ kind: fc.constant("copy" as const), user: who, file: fileIndex, at: positions(2) }), weight: 2 },
);

function scenario(poolSize: number): fc.Arbitrary<Scenario> {
	return fc.record({
		users: fc.uniqueArray(fc.nat({ max: poolSize - 1 }), { minLength: 2, maxLength: 2 }) as fc.Arbitrary<[number, number]>,
		blocks: fc.array(blockSetup, { minLength: 2, maxLength: 4 }),
		commands: fc.array(command, { minLength: 1, maxLength: 4 }),
		crash: fc.option(crashPoint, { freq: 8 }),
	});
}

/**
 * Two windows too narrow for random runs to hit often, run first every time:
 * a purge of a block's last reference between the sweep's check and its
 * batch that drops referenced candidates (the purge's own candidate row is
 * that row: the block must still be collected); a copy whose source is
 * deleted forever and collected between reading its block list and its
 * pre-check (the copy must not commit a block that is gone).
 */
const REGRESSIONS: Scenario[] = [
	{
		// The pool's first users are in shard 0, the first one checked.
		users: [0, 1],
		blocks: [
			{ holders: [0], stored: true, queued: true },
			{ holders: [], stored: true, queued: true },
		],
		commands: [{ kind: "purge", user: 0, file: 0, at: [{ stage: stageOf("check"), nth: 1 }] }],
		crash: null,
	},
	{
		users: [0, 1],
		blocks: [{ holders: [0], stored: true, queued: true }],
		commands: [
			{
				kind: "copy",
				user: 0,
				file: 0,
				at: [
					{ stage: 0, nth: 0 },
					{ stage: AFTER_THE_SWEEP, nth: 0 },
				],
			},
			{ kind: "purge", user: 0, file: 0, at: [{ stage: 0, nth: 0 }] },
		],
		crash: null,
	},
];

// ---- the sweep's steps ------------------------------------------------------------

/** What the sweep throws from its crash step on. */
class Crashed extends Error {
	constructor(readonly step: number) {
		super(`the collector died at step ${step} (test)`);
	}
}

function crashedIn(err: unknown): boolean {
	for (let e = err; e instanceof Error; e = e.cause) if (e instanceof Crashed) return true;
	return false;
}

/**
 * The sweep's steps, taken one at a time in the order the sweep asks for
 * them (its shards' statements would run side by side otherwise), each
 * after the commands scheduled before it. From the crash on, every step throws.
 */
class Steps {
	readonly kinds: StepKind[] = [];
	/** The crash's step, and which of its kind it was, once the sweep has died. */
	crashed: { step: number; at: string } | null = null;
	/** Whether the sweep has written tombstones: its reference check after that is the re-check. */
	doomed = false;
	readonly #seen = new Map<StepKind, number>();
	#tail: Promise<unknown> = Promise.resolve();

	constructor(
		private readonly crash: Crash | null,
		private readonly before: (at: Position) => Promise<void>,
	) {}

	take<T>(kind: StepKind, call: () => Promise<T>): Promise<T> {
		const turn = this.#tail.then(async () => {
			const step = this.kinds.length;
			const nth = this.#seen.get(kind) ?? 0;
			this.kinds.push(kind);
			this.#seen.set(kind, nth + 1);
			if (this.crashed === null && this.crash?.at === kind && this.crash.nth === nth) this.crashed = { step, at: `${kind} #${nth}` };
			if (this.crashed !== null) throw new Crashed(step);
			await this.before({ stage: stageOf(kind), nth });
			return call();
		});
		this.#tail = turn.catch(() => undefined);
		return turn;
	}
}

/** What a D1 call of the sweep does, from its SQL. */
function kindOf(steps: Steps, sql: string, home: boolean): StepKind {
	if (sql.includes("INSERT INTO doomed_blocks")) {
		steps.doomed = true;
		return home ? "doom (home)" : "doom (other)";
	}
	if (sql.includes("DELETE FROM doomed_blocks")) return "release";
	if (sql.includes("UPDATE gc_clock")) return "record";
	if (sql.includes("upload_blocks")) return steps.doomed ? "re-check" : "check";
	if (sql.includes("WHERE enqueued_at <=")) return "due";
	if (sql.includes("gc_candidates")) return "drop or queue again";
	throw new Error(`a step of the sweep this test does not know: ${sql}`);
}

const INNER = Symbol("inner statement");
const SQL = Symbol("sql");

interface SteppedStatement {
	[INNER]: D1PreparedStatement;
	[SQL]: string;
}

/** A shard's real D1 binding whose every query and batch is a step of `steps`. */
function steppedD1(inner: D1Database, steps: Steps, home: boolean): D1Database {
	const statement = (real: D1PreparedStatement, sql: string): D1PreparedStatement => {
		const take = <T>(call: () => Promise<T>) => steps.take(kindOf(steps, sql, home), call);
		const wrapped = {
			[INNER]: real,
			[SQL]: sql,
			bind: (...values: unknown[]) => statement(real.bind(...values), sql),
			first: (column?: string) => take(() => (column === undefined ? real.first() : real.first(column))),
			run: () => take(() => real.run()),
			all: () => take(() => real.all()),
			raw: (options?: { columnNames?: boolean }) => take(() => real.raw(options as { columnNames: true })),
		};
		return wrapped as unknown as D1PreparedStatement;
	};
	const batch = (statements: D1PreparedStatement[]) => {
		const stepped = statements as unknown as SteppedStatement[];
		const sql = stepped.map((s) => s[SQL]).join("\n");
		return steps.take(kindOf(steps, sql, home), () => inner.batch(stepped.map((s) => s[INNER])));
	};
	const refuse = () => {
		throw new Error("the sweep does not use this D1 method (test)");
	};
	return {
		prepare: (sql: string) => statement(inner.prepare(sql), sql),
		batch,
		exec: refuse,
		dump: refuse,
		withSession: refuse,
	} as unknown as D1Database;
}

/** The real BLOBS binding whose every call is a step of `steps`; `afterDelete` runs once R2 has deleted. */
function steppedBucket(inner: R2Bucket, steps: Steps, afterDelete: () => Promise<void>): R2Bucket {
	const refuse = () => {
		throw new Error("the sweep does not use this R2 method (test)");
	};
	return {
		head: (key: string) => steps.take("uploaded times", () => inner.head(key)),
		list: (options?: R2ListOptions) => steps.take("uploaded times", () => inner.list(options)),
		delete: async (keys: string | string[]) => {
			await steps.take("delete", () => inner.delete(keys));
			await afterDelete();
		},
		get: refuse,
		put: refuse,
	} as unknown as R2Bucket;
}

/**
 * A binding for one request whose first call of `method` is held until
 * `release()`: after the call took effect, or before it. `reached`
 * resolves once it is held.
 */
function holdFirst<T extends object>(
	inner: T,
	method: string,
	when: "before" | "after",
): { binding: T; reached: Promise<void>; release: () => void } {
	let reached = (): void => undefined;
	let release = (): void => undefined;
	const reachedP = new Promise<void>((r) => (reached = r));
	const released = new Promise<void>((r) => (release = r));
	let first = true;
	const hold = async () => {
		if (!first) return;
		first = false;
		reached();
		await released;
	};
	const binding = new Proxy(inner, {
		get(target, p) {
			const value: unknown = Reflect.get(target, p);
			if (typeof value !== "function") return value;
			const real = (...args: unknown[]) => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
			if (p !== method) return real;
			return async (...args: unknown[]) => {
				if (when === "before") await hold();
				const result = await real(...args);
				if (when === "after") await hold();
				return result;
			};
		},
	});
	return { binding, reached: reachedP, release };
}

// ---- one run ----------------------------------------------------------------------

interface PoolUser extends TestUser {
	shard: number;
}

interface Block {
	bytes: Uint8Array;
	hash: string;
}

/** A version a commit answered: its bytes must come back, and its blocks must stay. */
interface Committed {
	label: string;
	user: PoolUser;
	nodeId: string;
	versionId: string;
	bytes: Uint8Array;
	hashes: string[];
}

interface CommitReply {
	node: { id: string };
	version: { id: string };
}

interface UploadStatus {
	upload_id: string;
	missing: string[];
}

/** What the runs covered, for the summary line. */
const stats = {
	runs: 0,
	steps: 0,
	crashes: new Map<string, number>(),
	committedDuringSweep: 0,
	refused: new Map<string, number>(),
	finishedAfterSettle: 0,
	deletedBySweepsThatLived: 0,
};

function count(map: Map<string, number>, key: string): void {
	map.set(key, (map.get(key) ?? 0) + 1);
}

let runNumber = 0;
const salt = crypto.randomUUID();

class Run {
	readonly n = runNumber++;
	readonly blocks: Block[] = [];
	readonly committed: Committed[] = [];
	/** Each user's files from the set-up: what purges, copies and new versions pick from. */
	readonly files: [string[], string[]] = [[], []];
	readonly purged = new Set<string>();
	/** What clients still have to do once the next run has settled the dead sweep's tombstones. */
	readonly unfinished: (() => Promise<void>)[] = [];
	readonly log: string[] = [];
	sweeping = false;

	constructor(readonly users: [PoolUser, PoolUser]) {}

	block(i: number): Block {
		return this.blocks[i % this.blocks.length] as Block;
	}

	file(who: Who, i: number): string | null {
		const files = this.files[who];
		return files.length === 0 ? null : (files[i % files.length] as string);
	}

	byHash(hash: string): Block {
		const b = this.blocks.find((x) => x.hash === hash);
		if (!b) throw new Error(`a refusal asked for block ${hash}, which this run never listed`);
		return b;
	}

	get hashes(): string[] {
		return [...new Set(this.blocks.map((b) => b.hash))];
	}

	fail(message: string): Error {
		return new Error(`${message}\n${this.log.join("\n")}`);
	}

	async record(label: string, user: PoolUser, reply: CommitReply, bytes: Uint8Array, hashes: string[]): Promise<void> {
		this.committed.push({ label, user, nodeId: reply.node.id, versionId: reply.version.id, bytes, hashes });
		this.log.push(`${label}: committed ${reply.version.id}`);
		if (this.sweeping) stats.committedDuringSweep++;
		for (const h of hashes) if (!(await exists(h))) throw this.fail(`${label} committed, but its block ${h} is missing (invariant 1)`);
	}

	refused(label: string, code: string): void {
		this.log.push(`${label}: refused ${code}`);
		count(stats.refused, code);
	}

	/** Invariant 1, from R2 and every shard: each committed version's blocks, and each block anyone references, exist. */
	async checkPresent(when: string): Promise<Survey> {
		const survey = await surveyOf(this.hashes);
		for (const v of this.committed)
			for (const h of v.hashes) if (!survey.stored.has(h)) throw this.fail(`${when}: ${v.label}'s version reads a missing block ${h}`);
		for (const h of survey.referenced) if (!survey.stored.has(h)) throw this.fail(`${when}: block ${h} is referenced but missing`);
		return survey;
	}

	/** Invariant 2: no object of this run's blocks is left that nothing references. */
	async checkNoGarbage(survey: Survey): Promise<void> {
		const left = [...survey.stored].filter((h) => !survey.referenced.has(h));
		if (left.length === 0) return;
		const queued = await inAnyShard("SELECT hash FROM gc_candidates WHERE hash IN (SELECT value FROM json_each(?1))", left);
		const what = left.map((h) => `${h} (${queued.has(h) ? "still queued" : "queued nowhere"})`);
		throw this.fail(`after the next run, garbage blocks are left: ${what.join(", ")}`);
	}

	/** Every committed version downloads, byte for byte. */
	async checkDownloads(): Promise<void> {
		await Promise.all(
			this.committed.map(async (v) => {
				const res = await call(`/v1/files/${v.nodeId}/content?version_id=${v.versionId}`, { token: v.user.token });
				if (res.status !== 200) throw this.fail(`${v.label}: its download answered ${res.status} ${await res.text()}`);
				if (!bytesEqual(new Uint8Array(await res.arrayBuffer()), v.bytes)) throw this.fail(`${v.label}: its download differs`);
			}),
		);
	}
}

async function exists(hash: string): Promise<boolean> {
	return (await env.BLOBS.head(blockObjectKey(hash))) !== null;
}

/** Which of a run's blocks R2 holds, and which some shard references (a user's set or a version's list). */
interface Survey {
	stored: Set<string>;
	referenced: Set<string>;
}

async function surveyOf(hashes: string[]): Promise<Survey> {
	const [heads, referenced] = await Promise.all([
		Promise.all(hashes.map(async (h) => ((await exists(h)) ? h : null))),
		inAnyShard(
			`SELECT hash FROM user_blocks WHERE hash IN (SELECT value FROM json_each(?1))
			UNION SELECT hash FROM version_blocks WHERE hash IN (SELECT value FROM json_each(?1))`,
			hashes,
		),
	]);
	return { stored: new Set(heads.filter((h) => h !== null)), referenced };
}

/** The hashes `query` (over the list `?1`) finds in any shard, read straight from the shards. */
async function inAnyShard(query: string, hashes: string[]): Promise<Set<string>> {
	const rows = await Promise.all(
		Array.from({ length: shardCount(env) }, (_, i) =>
			shardBinding(env, i).prepare(query).bind(JSON.stringify(hashes)).all<{ hash: string }>(),
		),
	);
	return new Set(rows.flatMap((r) => r.results.map((row) => row.hash)));
}

async function makeBlock(run: Run, i: number): Promise<Block> {
	// Small enough to be one chunk of a PUT content, and unique to the run: runs never share a block.
	const bytes = new TextEncoder().encode(`gc-interleave ${salt} run ${run.n} block ${i} `.repeat(8 + i));
	return { bytes, hash: await sha256(bytes) };
}

/** PUT content of one block, as a new file or a new version of `fileId`. */
function putContent(user: PoolUser, name: string, bytes: Uint8Array, fileId: string | null): Promise<Response> {
	const path = fileId ? `/v1/files/${fileId}/content` : `/v1/files/content?${new URLSearchParams({ parent_id: user.rootId, name })}`;
	return call(path, { method: "PUT", token: user.token, body: bytes });
}

/** Sets up the run's blocks: files of their holders, objects nothing records, candidates in the home shard. */
async function setUp(run: Run, blocks: BlockSetup[]): Promise<void> {
	run.blocks.push(...(await Promise.all(blocks.map((_, i) => makeBlock(run, i)))));
	const held = blocks.flatMap((setup, i) => setup.holders.map((u) => ({ u, i, b: run.block(i) })));
	const stray = blocks.flatMap((setup, i) => (setup.stored && setup.holders.length === 0 ? [run.block(i)] : []));
	const [replies] = await Promise.all([
		Promise.all(
			held.map(async ({ u, i, b }) =>
				expectJson<CommitReply>(await putContent(run.users[u], `r${run.n}-held-${i}.txt`, b.bytes, null), 201),
			),
		),
		Promise.all(stray.map((b) => putBlock(env.BLOBS, keyRing(env), b.bytes))),
	]);
	for (const [k, { u, i, b }] of held.entries()) {
		const reply = replies[k] as CommitReply;
		run.files[u].push(reply.node.id);
		await run.record(`set-up file held-${i}.txt of user ${u}`, run.users[u], reply, b.bytes, [b.hash]);
	}
	const queued = blocks.flatMap((setup, i) => (setup.queued ? [run.block(i).hash] : []));
	const home = shardAt(env, run.users[0].shard);
	if (queued.length > 0) await runBatch(home.$client, enqueueCandidates(home, queued));
}

/** A client's retry once the dead sweep's tombstones are settled; it must commit then. */
function later(run: Run, label: string, retry: () => Promise<boolean>): void {
	run.unfinished.push(async () => {
		if (!(await retry())) throw run.fail(`${label} never committed`);
		stats.finishedAfterSettle++;
	});
}

/** Commits a session as a client does: a 409 MISSING_BLOCKS is answered by sending what it lists. True once committed. */
async function commitSession(run: Run, label: string, user: PoolUser, uploadId: string, listed: Block[], rounds: number): Promise<boolean> {
	for (let round = 0; round < rounds; round++) {
		const res = await call(`/v1/uploads/${uploadId}/commit`, { method: "POST", token: user.token, body: "{}" });
		if (res.status === 201) {
			const bytes = concat(listed.map((b) => b.bytes));
			await run.record(
				label,
				user,
				await expectJson<CommitReply>(res, 201),
				bytes,
				listed.map((b) => b.hash),
			);
			return true;
		}
		const refusal = await expectError(res, 409, "MISSING_BLOCKS");
		run.refused(label, "MISSING_BLOCKS");
		for (const hash of (refusal.error.details ?? []) as string[]) await sendBlock(user, uploadId, run.byHash(hash));
	}
	return false;
}

async function sendBlock(user: PoolUser, uploadId: string, b: Block): Promise<void> {
	const res = await call(`/v1/uploads/${uploadId}/blocks/${b.hash}`, { method: "PUT", token: user.token, body: b.bytes });
	if (res.status !== 204) throw new Error(`PUT block answered ${res.status}: ${await res.text()}`);
}

/**
 * PUT content as a client sends it; a 503 BLOCKS_RECLAIMED (with
 * Retry-After) is sent again, up to `attempts` times. True once committed,
 * or once a new version's file is gone (a purge came first).
 */
async function putLikeAClient(
	run: Run,
	label: string,
	user: PoolUser,
	name: string,
	b: Block,
	fileId: string | null,
	attempts: number,
): Promise<boolean> {
	for (let attempt = 0; attempt < attempts; attempt++) {
		const res = await putContent(user, name, b.bytes, fileId);
		if (fileId !== null && run.purged.has(fileId)) {
			await expectError(res, 404, "NOT_FOUND");
			run.log.push(`${label}: its file was deleted forever`);
			return true;
		}
		if (res.status === 200 || res.status === 201) {
			await run.record(label, user, await expectJson<CommitReply>(res, res.status), b.bytes, [b.hash]);
			return true;
		}
		await expectError(res.clone(), 503, "BLOCKS_RECLAIMED");
		expect(res.headers.get("Retry-After")).toBe("1");
		run.refused(label, "BLOCKS_RECLAIMED");
	}
	return false;
}

/** Copies `sourceId` as a client asks for it again. True once committed, or once the source is gone. */
async function copyLikeAClient(
	run: Run,
	label: string,
	user: PoolUser,
	sourceId: string,
	name: string,
	source: Committed,
): Promise<boolean> {
	const res = await call(`/v1/nodes/${sourceId}/copy`, {
		method: "POST",
		token: user.token,
		body: JSON.stringify({ parent_id: user.rootId, name }),
	});
	if (run.purged.has(sourceId)) {
		await expectError(res, 404, "NOT_FOUND");
		return true;
	}
	await run.record(label, user, await expectJson<CommitReply>(res, 201), source.bytes, source.hashes);
	return true;
}

interface Phase {
	at: Position;
	label: string;
	go: () => Promise<void>;
}

function phasesOf(run: Run, cmd: Command, ci: number): Phase[] {
	const user = run.users[cmd.user];
	const label = `command ${ci} (${cmd.kind} by user ${cmd.user})`;
	const at = (i: number) => cmd.at[i] as Position;
	const name = `r${run.n}-${cmd.kind}-${ci}.bin`;
	switch (cmd.kind) {
		case "session": {
			const listed = cmd.blocks.map((i) => run.block(i));
			let upload: UploadStatus = { upload_id: "", missing: [] };
			return [
				{
					at: at(0),
					label: `${label}: create`,
					go: async () => {
						const body = {
							parent_id: user.rootId,
							name,
							size: listed.reduce((n, b) => n + b.bytes.byteLength, 0),
							blocks: listed.map((b) => ({ hash: b.hash, size: b.bytes.byteLength })),
							content_hash: cmd.declare ? await sha256(concat(listed.map((b) => b.bytes))) : undefined,
						};
						upload = await expectJson<UploadStatus>(
							await call("/v1/uploads", { method: "POST", token: user.token, body: JSON.stringify(body) }),
							201,
						);
					},
				},
				{
					at: at(1),
					label: `${label}: send its missing blocks`,
					go: async () => {
						for (const hash of upload.missing) await sendBlock(user, upload.upload_id, run.byHash(hash));
					},
				},
				{
					at: at(2),
					label: `${label}: commit`,
					go: async () => {
						if (!(await commitSession(run, label, user, upload.upload_id, listed, 2)))
							later(run, label, () => commitSession(run, label, user, upload.upload_id, listed, 4));
					},
				},
			];
		}
		case "put": {
			const b = run.block(cmd.block);
			const fileId = cmd.file === null ? null : run.file(cmd.user, cmd.file);
			return [
				{
					at: at(0),
					label,
					go: async () => {
						if (!(await putLikeAClient(run, label, user, name, b, fileId, 1)))
							later(run, label, () => putLikeAClient(run, label, user, name, b, fileId, 3));
					},
				},
			];
		}
		case "staged-put": {
			const b = run.block(cmd.block);
			const caller = { userId: user.id, shard: user.shard, quotaBytes: QUOTA };
			const intended = { parentId: user.rootId, name, baseVersionId: null, onConflict: "copy" as const };
			let held: ReturnType<typeof holdFirst<R2Bucket>> | null = null;
			let outcome: ReturnType<typeof ingestAndCommit> | null = null;
			return [
				{
					at: at(0),
					label: `${label}: pre-check and store`,
					go: async () => {
						const checked = await precheckCommit(env, caller, { ...intended, size: b.bytes.byteLength });
						if (!checked.ok) throw run.fail(`${label}: its pre-check refused ${checked.error.code}`);
						held = holdFirst(env.BLOBS, "put", "after");
						const commit = { ...intended, quotaBytes: QUOTA, actor: { deviceId: user.deviceId, deviceName: "Test laptop" } };
						const limits = { maxBytes: 1e8, blocksSince: checked.value.blocksSince };
						outcome = ingestAndCommit({ ...env, BLOBS: held.binding }, caller, new Response(b.bytes).body, commit, limits);
						await Promise.race([held.reached, outcome]);
					},
				},
				{
					at: at(1),
					label: `${label}: commit`,
					go: async () => {
						if (!held || !outcome) throw run.fail(`${label}: committed before it stored`);
						held.release();
						const done = await outcome;
						if (done.ok) return run.record(label, user, done.value, b.bytes, [b.hash]);
						if (done.error.code !== "BLOCKS_RECLAIMED") throw run.fail(`${label}: refused ${done.error.code} ${done.error.message}`);
						run.refused(label, "BLOCKS_RECLAIMED");
						// The route answers 503 with Retry-After: the client sends the same request again.
						later(run, label, () => putLikeAClient(run, label, user, name, b, null, 3));
					},
				},
			];
		}
		case "copy": {
			const sourceId = run.file(cmd.user, cmd.file);
			const caller = {
				userId: user.id,
				email: user.email,
				deviceId: user.deviceId,
				deviceName: "Test laptop",
				shard: user.shard,
				quotaBytes: QUOTA,
			};
			let source: Committed | undefined;
			let held: ReturnType<typeof holdFirst<D1Database>> | null = null;
			let outcome: ReturnType<typeof copyFile> | null = null;
			return [
				{
					at: at(0),
					label: `${label}: read its source`,
					go: async () => {
						if (sourceId === null) return;
						source = run.committed.filter((v) => v.nodeId === sourceId).at(-1);
						// Its first batch is the destination's pre-check, which reads the gc clock.
						held = holdFirst(shardBinding(env, user.shard), "batch", "before");
						outcome = copyFile({ ...env, [`SHARD_${user.shard}`]: held.binding } as Env, caller, sourceId, { parentId: user.rootId, name });
						await Promise.race([held.reached, outcome]);
					},
				},
				{
					at: at(1),
					label: `${label}: pre-check and commit`,
					go: async () => {
						if (!held || !outcome || sourceId === null) return;
						held.release();
						const done = await outcome;
						if (done.ok) {
							if (!source) throw run.fail(`${label}: copied a file deleted forever`);
							return run.record(label, user, done.value.outcome, source.bytes, source.hashes);
						}
						if (done.error.code === "NOT_FOUND" && run.purged.has(sourceId))
							return void run.log.push(`${label}: its source was deleted forever`);
						if (done.error.code !== "BLOCKS_RECLAIMED" || !source)
							throw run.fail(`${label}: refused ${done.error.code} ${done.error.message}`);
						run.refused(label, "BLOCKS_RECLAIMED");
						const copied = source;
						later(run, label, () => copyLikeAClient(run, label, user, sourceId, name, copied));
					},
				},
			];
		}
		case "purge": {
			const fileId = run.file(cmd.user, cmd.file);
			return [
				{
					at: at(0),
					label,
					go: async () => {
						if (fileId === null || run.purged.has(fileId)) return;
						await expectJson(await call(`/v1/nodes/${fileId}`, { method: "DELETE", token: user.token }), 200);
						const res = await call(`/v1/nodes/${fileId}?permanent=true`, { method: "DELETE", token: user.token });
						if (res.status !== 204) throw run.fail(`${label}: deleting forever answered ${res.status} ${await res.text()}`);
						await settlePurges(user.id);
						run.purged.add(fileId);
						run.committed.splice(0, run.committed.length, ...run.committed.filter((v) => v.nodeId !== fileId));
						run.log.push(`${label}: deleted ${fileId} forever`);
					},
				},
			];
		}
	}
}

async function runScenario(pool: PoolUser[], s: Scenario): Promise<void> {
	const run = new Run([pool[s.users[0]] as PoolUser, pool[s.users[1]] as PoolUser]);
	const crash = s.crash ? `${s.crash.at} #${s.crash.nth}` : "no step";
	run.log.push(`run ${run.n}: users in shards ${run.users[0].shard} (the sweep's home) and ${run.users[1].shard}; it dies at ${crash}`);
	await setUp(run, s.blocks);

	const phases = s.commands.flatMap((cmd, ci) => phasesOf(run, cmd, ci)).sort((a, b) => byPosition(a.at, b.at));
	let next = 0;
	let failure: unknown = null;
	/** Runs the phases due before `at`; a failure is the run's, reported once the sweep is over, never the sweep's. */
	const upTo = async (at: Position) => {
		while (failure === null && next < phases.length && byPosition((phases[next] as Phase).at, at) <= 0) {
			const phase = phases[next++] as Phase;
			run.log.push(`  ${describePosition(phase.at)}: ${phase.label}`);
			await phase.go().catch((err: unknown) => (failure = err));
		}
	};
	const steps = new Steps(s.crash, upTo);
	// R2's delete is the one step that removes objects: right after it every committed version must still read (a later
	// commit checks its own blocks), before anything could write them again.
	const afterDelete = () =>
		run.checkPresent("right after the sweep's delete").then(
			() => undefined,
			(err: unknown) => void (failure ??= err),
		);
	const home = run.users[0].shard;
	const shards = Array.from({ length: shardCount(env) }, (_, i) => openShard(steppedD1(shardBinding(env, i), steps, i === home)));
	const bucket = steppedBucket(env.BLOBS, steps, afterDelete);

	await upTo({ stage: 0, nth: 0 });
	if (failure !== null) throw failure;
	run.sweeping = true;
	// No grace: what was written before the sweep started is old enough to go, unless the protocol keeps it.
	const ctx = { shards, home: shards[home] as (typeof shards)[number], bucket, now: Date.now(), graceMs: 0 };
	const swept = await sweepShard(ctx, GC_CANDIDATES_PER_SHARD).then(
		(outcome) => ({ outcome, error: null }),
		(error: unknown) => ({ outcome: null, error }),
	);
	run.sweeping = false;
	run.log.push(
		`the sweep took ${steps.kinds.length} steps: ${steps.kinds.join(", ")}; ${swept.outcome ? `it deleted ${swept.outcome.deleted}` : "it died"}`,
	);
	if (failure !== null) throw failure;
	if (steps.crashed) {
		if (!crashedIn(swept.error)) throw run.fail(`the sweep should have died at step ${steps.crashed.step}: ${String(swept.error)}`);
		count(stats.crashes, steps.crashed.at);
	} else {
		if (swept.error !== null) throw swept.error;
		count(stats.crashes, "none");
		stats.deletedBySweepsThatLived += swept.outcome?.deleted ?? 0;
	}
	stats.steps += steps.crashed?.step ?? steps.kinds.length;

	// The world goes on after the crash.
	await upTo({ stage: AFTER_THE_SWEEP, nth: 0 });
	if (failure !== null) throw failure;

	// The next run, hours later: the dead sweep's tombstones are stale, and every candidate is due; nothing is in flight, so no grace.
	const nextRun = Date.now() + STALE_TOMBSTONE_MS + HOUR;
	await Promise.all(Array.from({ length: shardCount(env) }, (_, i) => settleTombstones(shardAt(env, i), nextRun)));
	await upTo({ stage: AFTER_THE_SETTLE, nth: 0 });
	if (failure !== null) throw failure;
	for (const retry of run.unfinished) await retry();
	const report = await collectBlocks(env, env.BLOBS, { now: nextRun, graceMs: 0 });
	if (report.failures.length > 0) throw new AggregateError(report.failures, "the next run failed");
	await run.checkNoGarbage(await run.checkPresent("after the next run"));
	await run.checkDownloads();
	stats.runs++;
}

/** Users in every shard, so that runs cover users of one shard and of two. */
async function userPool(): Promise<PoolUser[]> {
	const byShard = new Map<number, PoolUser[]>();
	const n = shardCount(env);
	while ([...Array(n).keys()].some((i) => (byShard.get(i)?.length ?? 0) < USERS_PER_SHARD)) {
		const user = await signup();
		const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
		const shard = row?.shard ?? 0;
		const list = byShard.get(shard) ?? [];
		if (list.length < USERS_PER_SHARD) list.push({ ...user, shard });
		byShard.set(shard, list);
	}
	return [...byShard.keys()].sort((a, b) => a - b).flatMap((shard) => byShard.get(shard) ?? []);
}

describe("the block collector under interleaved uploads, commits, copies and purges", () => {
	it("no committed version ever reads a missing block, and every garbage block is gone after the next run, whichever step the sweep dies at", async () => {
		const pool = await userPool();
		await fc.assert(
			fc.asyncProperty(scenario(pool.length), (s) => runScenario(pool, s)),
			{ numRuns: REGRESSIONS.length + RUNS, seed: SEED, examples: REGRESSIONS.map((s) => [s]) },
		);
		console.log(
			JSON.stringify({
				runs: stats.runs,
				stepsBeforeTheCrash: stats.steps,
				crashes: Object.fromEntries([...stats.crashes].sort()),
				committedDuringSweep: stats.committedDuringSweep,
				refused: Object.fromEntries(stats.refused),
				finishedAfterSettle: stats.finishedAfterSettle,
				deletedBySweepsThatLived: stats.deletedBySweepsThatLived,
			}),
		);
		for (const kind of STEP_KINDS)
			expect(
				[...stats.crashes.keys()].some((k) => k.startsWith(`${kind} #`)),
				`a crash at ${kind}`,
			).toBe(true);
		expect(stats.crashes.get("none"), "runs without a crash").toBeGreaterThan(0);
	}, 600_000);
});
