/**
 * Failure drills: wraps a worker's bindings so that chosen operations fail
 * the way the platform fails them (an R2 put that errors, a D1 batch that
 * times out after it committed, a Durable Object that is unreachable), and
 * counts the operations each binding served. The fault-injection tests and
 * the load benchmark use it (docs/operations.md, "Failure playbooks").
 *
 * Off unless the worker's DRILLS variable is "on": no deployed config sets
 * it, and then `withDrills` hands back the env untouched, so production pays
 * one property read per invocation.
 *
 * Faults are held per isolate. Tests in workerd set them in the isolate that
 * runs the code under test (the api worker's module, or the notify worker's
 * in its own project); the hub also takes them over RPC (UserHub.drill).
 */
import { aroundNamespaceCalls } from "./rpc-stubs";

/** What a rule intercepts. */
export type FaultTarget =
	| "r2.put"
	| "r2.get"
	| "r2.head"
	| "r2.delete"
	| "r2.list"
	| "d1.query" // prepare(...).run/all/first/raw outside a batch
	| "d1.batch"
	| "do.call"; // any RPC method of a stub the namespace hands out

/**
 * How the intercepted operation fails:
 * - "error": it throws before anything happens (the platform refused it);
 * - "after": it runs, then throws, as when the answer is lost (a timeout
 *   after the write committed): the caller cannot tell it succeeded;
 * - "rate-limit": an R2 write refused for the key's per-second limit;
 * - "hang": it never settles; the code under test must give up on its own.
 */
export type FaultEffect = "error" | "after" | "rate-limit" | "hang";

export interface FaultRule {
	target: FaultTarget;
	effect: FaultEffect;
	/** Only this binding (e.g. "SHARD_1", "BLOCKS", "USER_HUB"); any binding when absent. */
	binding?: string;
	/** Only operations whose key (R2), SQL (D1) or method name (DO) contains this. */
	match?: string;
	/** Matching operations to let through before the first failure (default 0). */
	skip?: number;
	/** How many operations fail once it starts (default 1; 0 means every one from then on). */
	times?: number;
}

interface ActiveRule extends FaultRule {
	seen: number;
	fired: number;
}

let rules: ActiveRule[] = [];
const counts = new Map<string, number>();

/** Replaces this isolate's faults. */
export function setFaults(next: readonly FaultRule[]): void {
	rules = next.map((rule) => ({ ...rule, seen: 0, fired: 0 }));
}

/** Removes every fault of this isolate. */
export function clearFaults(): void {
	rules = [];
}

/** How many times each rule fired, in the order they were set. */
export function faultsFired(): number[] {
	return rules.map((rule) => rule.fired);
}

/** Operations served per "BINDING target" since the last reset (the load benchmark's per-database shares). */
export function operationCounts(reset = false): Record<string, number> {
	const out = Object.fromEntries(counts);
	if (reset) counts.clear();
	return out;
}

/** D1 sessions opened per "BINDING first-primary|first-unconstrained|bookmark" since the last reset. */
export function sessionsOpened(reset = false): Record<string, number> {
	const out = Object.fromEntries(sessions);
	if (reset) sessions.clear();
	return out;
}

const sessions = new Map<string, number>();

/** The env itself unless DRILLS is "on"; then a view whose bindings count and fail as the rules say. */
export function withDrills<E extends object>(env: E): E {
	if ((env as { DRILLS?: unknown }).DRILLS !== "on") return env;
	let view = views.get(env);
	if (view === undefined) {
		const wrappedBindings = new Map<string | symbol, unknown>();
		view = new Proxy(env, {
			get(target, name, receiver) {
				const value: unknown = Reflect.get(target, name, receiver);
				if (typeof name !== "string" || value === null || typeof value !== "object") return value;
				let wrapped = wrappedBindings.get(name);
				if (wrapped === undefined) {
					wrapped = wrapBinding(name, value);
					wrappedBindings.set(name, wrapped);
				}
				return wrapped;
			},
		});
		views.set(env, view);
	}
	return view as E;
}

const views = new WeakMap<object, object>();

function wrapBinding(name: string, value: object): unknown {
	// A service binding's RPC stub claims every property name; it is none of the kinds below.
	if ("__drills_no_such_member__" in value) return value;
	if ("prepare" in value && "batch" in value) return wrapD1(name, value as D1Database);
	if ("put" in value && "head" in value && "createMultipartUpload" in value) return wrapR2(name, value as R2Bucket);
	if ("getByName" in value && "idFromName" in value) return wrapNamespace(name, value as DurableObjectNamespace);
	return value;
}

/** Counts the operation, then throws, hangs or lets it run as the first matching rule says. */
async function intercept<T>(binding: string, target: FaultTarget, subject: string, run: () => Promise<T>): Promise<T> {
	const key = `${binding} ${target}`;
	counts.set(key, (counts.get(key) ?? 0) + 1);
	const rule = rules.find(
		(r) =>
			r.target === target && (r.binding === undefined || r.binding === binding) && (r.match === undefined || subject.includes(r.match)),
	);
	if (rule === undefined) return run();
	rule.seen++;
	const times = rule.times ?? 1;
	const due = rule.seen > (rule.skip ?? 0) && (times === 0 || rule.fired < times);
	if (!due) return run();
	rule.fired++;
	switch (rule.effect) {
		case "hang":
			return new Promise<T>(() => {});
		case "after":
			await run();
			throw platformError(target, binding, "the operation timed out");
		case "rate-limit":
			throw Object.assign(new Error(`${target}: Reduce your rate of writes to this key and try again. (10058)`), { retryable: true });
		case "error":
			throw platformError(target, binding, "an internal error occurred");
	}
}

/** Errors worded the way the platform words them, so the code under test sees what it would see. */
function platformError(target: FaultTarget, binding: string, what: string): Error {
	if (target.startsWith("d1.")) return new Error(`D1_ERROR: ${what} (drill on ${binding})`);
	if (target.startsWith("r2."))
		return new Error(`${target.slice(3)}: We encountered an internal error. Please try again. (10001) (drill on ${binding}: ${what})`);
	return Object.assign(new Error(`Durable Object is unavailable: ${what} (drill on ${binding})`), { retryable: true, remote: true });
}

function wrapD1(binding: string, db: D1Database | D1DatabaseSession): D1Database {
	return new Proxy(db, {
		get(target, name, receiver) {
			const value: unknown = Reflect.get(target, name, receiver);
			if (name === "prepare") return (sql: string) => wrapStatement(binding, target.prepare(sql), sql);
			if (name === "batch")
				return (statements: D1PreparedStatement[]) =>
					intercept(binding, "d1.batch", statements.map((s) => sqlOf.get(s) ?? "").join(";\n"), () =>
						target.batch(statements.map((s) => innerOf.get(s) ?? s)),
					);
			if (name === "withSession" && typeof value === "function")
				return (constraint?: string) => {
					// Counted by how it starts, so tests see which reads were held to a bookmark (docs/decisions/0031-read-your-writes-with-bookmarks.md).
					const start = constraint === undefined || constraint.startsWith("first-") ? (constraint ?? "first-unconstrained") : "bookmark";
					const key = `${binding} ${start}`;
					sessions.set(key, (sessions.get(key) ?? 0) + 1);
					return wrapD1(binding, (value as (c?: string) => D1DatabaseSession).call(target, constraint));
				};
			return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
		},
	}) as D1Database;
}

const sqlOf = new WeakMap<object, string>();
const innerOf = new WeakMap<object, D1PreparedStatement>();

function wrapStatement(binding: string, statement: D1PreparedStatement, sql: string): D1PreparedStatement {
	const wrapped: D1PreparedStatement = new Proxy(statement, {
		get(target, name, receiver) {
			const value: unknown = Reflect.get(target, name, receiver);
			if (name === "bind") return (...values: unknown[]) => wrapStatement(binding, target.bind(...values), sql);
			if (name === "run" || name === "all" || name === "first" || name === "raw")
				return (...args: unknown[]) =>
					intercept(binding, "d1.query", sql, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
			return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
		},
	});
	sqlOf.set(wrapped, sql);
	innerOf.set(wrapped, statement);
	return wrapped;
}

function wrapR2(binding: string, bucket: R2Bucket): R2Bucket {
	const ops: Record<string, FaultTarget> = { put: "r2.put", get: "r2.get", head: "r2.head", delete: "r2.delete", list: "r2.list" };
	return new Proxy(bucket, {
		get(target, name, receiver) {
			const value: unknown = Reflect.get(target, name, receiver);
			if (typeof value !== "function") return value;
			const op = typeof name === "string" ? ops[name] : undefined;
			if (op === undefined) return (value as (...args: unknown[]) => unknown).bind(target);
			return (...args: unknown[]) => {
				const subject = typeof args[0] === "string" ? args[0] : JSON.stringify(args[0] ?? "");
				return intercept(binding, op, subject, () => (value as (...a: unknown[]) => Promise<unknown>).apply(target, args));
			};
		},
	});
}

function wrapNamespace(binding: string, namespace: DurableObjectNamespace): DurableObjectNamespace {
	// The drill control itself always gets through (routes/drills.ts).
	return aroundNamespaceCalls(namespace, (method, call) => intercept(binding, "do.call", method, call), ["drill"]);
}
