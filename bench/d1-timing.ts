/**
 * The time D1 spends on the api worker's queries, for the capacity model
 * (bench/scenarios/capacity.mjs): wraps every D1 binding of the bench
 * worker's env and adds up `meta.duration` (the time the database itself
 * took, which sets a D1 primary's throughput) per binding. Bench stacks only:
 * bench/worker.ts applies it, the production worker never does.
 */

interface Tally {
	/** Statements run (a batch counts each of its statements). */
	queries: number;
	/** Round trips: a batch is one. */
	calls: number;
	/** Wall time of the calls as the worker saw them (the local database's own time plus the hop to it). */
	wallMs: number;
	/** Statements whose result carried `meta.duration`, and its sum: the time inside the database. */
	metaQueries: number;
	metaMs: number;
}

const tallies = new Map<string, Tally>();

/** Queries and their D1 time per binding since the last reset. */
export function d1Times(reset = false): Record<string, Tally> {
	const out = Object.fromEntries([...tallies].map(([k, v]) => [k, { ...v }]));
	if (reset) tallies.clear();
	return out;
}

async function timed<T>(binding: string, queries: number, run: () => Promise<T>, metas: (result: T) => unknown[]): Promise<T> {
	const started = performance.now();
	const result = await run();
	const t = tallies.get(binding) ?? { queries: 0, calls: 0, wallMs: 0, metaQueries: 0, metaMs: 0 };
	t.queries += queries;
	t.calls += 1;
	t.wallMs += performance.now() - started;
	for (const r of metas(result)) {
		const d = (r as { meta?: { duration?: number } } | null)?.meta?.duration;
		if (typeof d === "number") {
			t.metaQueries += 1;
			t.metaMs += d;
		}
	}
	tallies.set(binding, t);
	return result;
}

/** `env` with each D1 binding timed. */
export function withD1Timing<E extends object>(env: E): E {
	let view = views.get(env);
	if (view === undefined) {
		const wrapped = new Map<string, unknown>();
		view = new Proxy(env, {
			get(target, name, receiver) {
				const value: unknown = Reflect.get(target, name, receiver);
				if (typeof name !== "string" || value === null || typeof value !== "object") return value;
				if (!("prepare" in value && "batch" in value)) return value;
				let w = wrapped.get(name);
				if (w === undefined) {
					w = timeD1(name, value as D1Database);
					wrapped.set(name, w);
				}
				return w;
			},
		});
		views.set(env, view);
	}
	return view as E;
}

const views = new WeakMap<object, object>();
const innerOf = new WeakMap<object, D1PreparedStatement>();

function timeD1(binding: string, db: D1Database | D1DatabaseSession): D1Database {
	return new Proxy(db, {
		get(target, name, receiver) {
			const value: unknown = Reflect.get(target, name, receiver);
			if (name === "prepare") return (sql: string) => timeStatement(binding, target.prepare(sql));
			if (name === "batch")
				return (statements: D1PreparedStatement[]) =>
					timed(
						binding,
						statements.length,
						() => target.batch(statements.map((s) => innerOf.get(s) ?? s)),
						(results) => results,
					);
			if (name === "withSession" && typeof value === "function")
				return (constraint?: string) => timeD1(binding, (value as (c?: string) => D1DatabaseSession).call(target, constraint));
			return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
		},
	}) as D1Database;
}

function timeStatement(binding: string, statement: D1PreparedStatement): D1PreparedStatement {
	const wrapped: D1PreparedStatement = new Proxy(statement, {
		get(target, name, receiver) {
			const value: unknown = Reflect.get(target, name, receiver);
			if (name === "bind") return (...values: unknown[]) => timeStatement(binding, target.bind(...values));
			if (name === "run" || name === "all" || name === "first" || name === "raw")
				return (...args: unknown[]) =>
					timed(
						binding,
						1,
						() => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args),
						// Only run() and all() answer with meta; first() and raw() add to the wall time alone.
						(result) => (name === "run" || name === "all" ? [result] : []),
					);
			return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
		},
	});
	innerOf.set(wrapped, statement);
	return wrapped;
}
