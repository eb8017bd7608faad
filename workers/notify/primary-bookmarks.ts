/**
 * The hub's view of its shard: every query still runs on the primary, as
 * the plain binding runs it, but each in a D1 session of its own opened
 * "first-primary", so that the hub learns the bookmark after it. Its write
 * results and sync frames carry that bookmark, and the api reads at least
 * that far (docs/decisions/0031-read-your-writes-with-bookmarks.md).
 *
 * A fresh session per execution, not one per hub: after its first query a
 * session may read from any replica that has its bookmark, which could miss
 * rows the api wrote straight to the shard (an upload's row before its commit).
 */

/** `binding` as the hub uses it, telling `note` the bookmark after every query and batch. */
export function trackBookmarks(binding: D1Database, note: (bookmark: string) => void): D1Database {
	const fresh = () => binding.withSession("first-primary");
	const after = (session: D1DatabaseSession) => {
		const bookmark = session.getBookmark();
		if (bookmark !== null) note(bookmark);
	};
	const tracked = {
		prepare: (sql: string) => new TrackedStatement(fresh, after, sql, null),
		batch: async <T = unknown>(statements: D1PreparedStatement[]): Promise<D1Result<T>[]> => {
			const session = fresh();
			try {
				return await session.batch<T>(statements.map((s) => (s instanceof TrackedStatement ? s.on(session) : s)));
			} finally {
				after(session);
			}
		},
		exec: (query: string) => binding.exec(query),
		withSession: (constraint?: string) => binding.withSession(constraint),
		dump: () => binding.dump(),
	};
	return tracked as unknown as D1Database;
}

/** A statement that runs in a fresh session each time, so that reusing it never reads a replica. */
class TrackedStatement {
	constructor(
		private readonly fresh: () => D1DatabaseSession,
		private readonly after: (session: D1DatabaseSession) => void,
		private readonly sql: string,
		private readonly values: unknown[] | null,
	) {}

	bind(...values: unknown[]): TrackedStatement {
		return new TrackedStatement(this.fresh, this.after, this.sql, values);
	}

	/** This statement prepared (and bound) in `session`. */
	on(session: D1DatabaseSession): D1PreparedStatement {
		const statement = session.prepare(this.sql);
		return this.values === null ? statement : statement.bind(...this.values);
	}

	run<T = Record<string, unknown>>(): Promise<D1Result<T>> {
		return this.#once((s) => s.run<T>());
	}

	all<T = Record<string, unknown>>(): Promise<D1Result<T>> {
		return this.#once((s) => s.all<T>());
	}

	first<T = unknown>(column?: string): Promise<T | null> {
		return this.#once((s) => (column === undefined ? s.first<T>() : s.first<T>(column)));
	}

	raw<T = unknown[]>(options?: { columnNames?: boolean }): Promise<T[]> {
		return this.#once((s) => (options?.columnNames === true ? s.raw<T>({ columnNames: true }) : s.raw<T>()) as Promise<T[]>);
	}

	async #once<R>(work: (statement: D1PreparedStatement) => Promise<R>): Promise<R> {
		const session = this.fresh();
		try {
			return await work(this.on(session));
		} finally {
			this.after(session);
		}
	}
}
