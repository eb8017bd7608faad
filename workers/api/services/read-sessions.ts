/**
 * One request's D1 sessions (docs/decisions/0031-read-your-writes-with-bookmarks.md):
 * an env in which every SHARD_<n> is a session of that shard, opened at the
 * bookmark the client sent for it or "first-unconstrained", and in which
 * every UserHub answer's bookmark is noted. Services take this env like any
 * other, so none of them knows about sessions.
 */
import { noteBookmark, parseBookmarks, type Bookmarks } from "../../../src/shared/bookmarks";
import { aroundNamespaceCalls } from "../../../src/shared/rpc-stubs";

const SHARD_NAME = /^SHARD_(0|[1-9][0-9]*)$/;

export class ReadSessions {
	/** The env the request runs with. */
	readonly env: Env;
	/** Newest bookmark per shard: the client's, its sessions', the hubs' answers'. */
	readonly #known: Bookmarks;
	readonly #facades = new Map<number, D1Database>();
	readonly #sessions = new Map<number, D1DatabaseSession>();
	readonly #touched = new Set<number>();

	constructor(base: Env, given: Bookmarks) {
		this.#known = new Map(given);
		const hubs = new WeakMap<object, unknown>();
		this.env = new Proxy(base, {
			get: (target, name) => {
				const value: unknown = Reflect.get(target, name);
				if (typeof name !== "string" || value === null || typeof value !== "object") return value;
				const shard = SHARD_NAME.exec(name)?.[1];
				if (shard !== undefined) return this.#facade(Number(shard), value as D1Database);
				if (name === "USER_HUB") {
					let wrapped = hubs.get(value);
					if (wrapped === undefined) hubs.set(value, (wrapped = this.#hubs(value as DurableObjectNamespace)));
					return wrapped;
				}
				return value;
			},
		});
	}

	/**
	 * The newest bookmark of every shard this request read or a hub wrote; a
	 * client's entry of a shard the request never touched is not echoed.
	 */
	newest(): Bookmarks {
		for (const [shard, session] of this.#sessions) this.#learn(shard, session.getBookmark());
		const out: Bookmarks = new Map();
		for (const shard of this.#touched) {
			const bookmark = this.#known.get(shard);
			if (bookmark !== undefined) out.set(shard, bookmark);
		}
		return out;
	}

	/**
	 * A stable stand-in for the shard's binding (drizzle wraps it once per
	 * request) that runs each statement in the shard's current session.
	 */
	#facade(shard: number, binding: D1Database): D1Database {
		let facade = this.#facades.get(shard);
		if (facade === undefined) {
			facade = {
				prepare: (sql: string) => this.#session(shard, binding).prepare(sql),
				batch: <T = unknown>(statements: D1PreparedStatement[]) => this.#session(shard, binding).batch<T>(statements),
				exec: (query: string) => binding.exec(query),
				withSession: (constraint?: string) => binding.withSession(constraint),
				dump: () => binding.dump(),
			} as D1Database;
			this.#facades.set(shard, facade);
		}
		return facade;
	}

	/**
	 * The shard's session; a new one once a newer bookmark is known than the
	 * session has reached (a hub wrote during this request), so that the
	 * request's later reads see the write.
	 */
	#session(shard: number, binding: D1Database): D1DatabaseSession {
		const current = this.#sessions.get(shard);
		const reached = current?.getBookmark() ?? null;
		this.#learn(shard, reached);
		const wanted = this.#known.get(shard);
		if (current !== undefined && (wanted === undefined || reached === wanted)) return current;
		const session = binding.withSession(wanted ?? "first-unconstrained");
		this.#sessions.set(shard, session);
		return session;
	}

	#learn(shard: number, bookmark: string | null): void {
		if (bookmark === null) return;
		noteBookmark(this.#known, shard, bookmark);
		this.#touched.add(shard);
	}

	/** Notes the bookmark of a hub's answer (`<shard>.<bookmark>`); any other value is left alone. */
	#noteAnswer(answer: unknown): void {
		for (const item of Array.isArray(answer) ? answer : [answer]) {
			const tagged = typeof item === "object" && item !== null ? (item as { bookmark?: unknown }).bookmark : undefined;
			if (typeof tagged !== "string") continue;
			for (const [shard, bookmark] of parseBookmarks(tagged) ?? []) this.#learn(shard, bookmark);
		}
	}

	/** The namespace, with stubs whose RPC answers are noted; fetch (the WebSocket upgrade) passes through. */
	#hubs(namespace: DurableObjectNamespace): DurableObjectNamespace {
		return aroundNamespaceCalls(
			namespace,
			async (_method, call) => {
				const answer = await call();
				this.#noteAnswer(answer);
				return answer;
			},
			["fetch"],
		);
	}
}
