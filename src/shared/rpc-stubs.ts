/**
 * Durable Object stubs whose RPC calls go through a function of ours: the
 * api maps platform errors (services/hub.ts), notes bookmarks
 * (services/read-sessions.ts), and the drills fail and count calls
 * (drills.ts). Every method, wrapped or passed through, is called on the
 * stub itself: a native stub's method taken off it, or called with a proxy
 * as `this`, throws.
 */

type Method = (...args: unknown[]) => unknown;

/** Runs one RPC call (`call`) of `method`, and answers what the caller gets. */
export type AroundCall = (method: string, call: () => Promise<unknown>) => Promise<unknown>;

/** `stub`, with each RPC method but those in `passThrough` (and `then`) called through `around`. */
export function aroundStubCalls<S extends object>(stub: S, around: AroundCall, passThrough: readonly string[] = []): S {
	return new Proxy(stub, {
		get(target, name) {
			const value: unknown = Reflect.get(target, name);
			if (typeof value !== "function") return value;
			if (typeof name !== "string") return (value as Method).bind(target);
			const methods = target as unknown as Record<string, Method>;
			// `then` must stay what it is, or awaiting a stub would call it.
			if (name === "then" || passThrough.includes(name)) return (...args: unknown[]) => methods[name]?.(...args);
			return (...args: unknown[]) => around(name, async () => methods[name]?.(...args));
		},
	});
}

/** `namespace`, whose `get` and `getByName` hand out stubs wrapped by {@link aroundStubCalls}. */
export function aroundNamespaceCalls<N extends object>(namespace: N, around: AroundCall, passThrough: readonly string[] = []): N {
	return new Proxy(namespace, {
		get(target, name) {
			const value: unknown = Reflect.get(target, name);
			if (typeof value !== "function") return value;
			if (name === "get" || name === "getByName")
				return (...args: unknown[]) => aroundStubCalls((value as Method).apply(target, args) as object, around, passThrough);
			return (value as Method).bind(target);
		},
	});
}
