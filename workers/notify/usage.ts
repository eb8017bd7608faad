/**
 * What a user stores and how fast they write, as their UserHub keeps it.
 *
 * The hub is the only writer of its user's tree, so it keeps the totals of
 * `user_usage` (bytes of every retained version, trash included, and the
 * node count) in memory once loaded, and writes each change to them in the
 * same D1 batch as the change itself (docs/decisions/0018).
 */
import { sql } from "drizzle-orm";
import { fail, ok, type Result } from "../../src/shared/errors";
import { nodesExceeded, quotaExceeded } from "../../src/shared/commit/failures";
import type { ShardDb } from "../../src/shared/db/shards";

/** The per-user limits the hub enforces; the api sends the quota, the rest is the notify worker's config. */
export interface HubLimits {
	quotaBytes: number;
	maxNodes: number;
}

export interface UsageTotals {
	versionBytes: number;
	nodes: number;
}

export class Usage {
	#totals: UsageTotals | null = null;

	constructor(
		private readonly db: ShardDb,
		private readonly userId: string,
	) {}

	/** The totals, read from the shard on first need. */
	async totals(): Promise<UsageTotals> {
		if (this.#totals === null) {
			const rows = await this.db.all<{ version_bytes: number; nodes: number }>(
				sql`SELECT version_bytes, nodes FROM user_usage WHERE user_id = ${this.userId}`,
			);
			this.#totals = { versionBytes: rows[0]?.version_bytes ?? 0, nodes: rows[0]?.nodes ?? 0 };
		}
		return this.#totals;
	}

	/** Whether `bytes` more bytes and `nodes` more nodes fit the user's limits. */
	async check(bytes: number, nodes: number, limits: HubLimits): Promise<Result<void>> {
		const totals = await this.totals();
		if (bytes > 0 && totals.versionBytes + bytes > limits.quotaBytes) return quotaExceeded(bytes, totals.versionBytes, limits.quotaBytes);
		if (nodes > 0 && totals.nodes + nodes > limits.maxNodes) return nodesExceeded(limits.maxNodes, totals.nodes);
		return ok(undefined);
	}

	/** The statement that moves the stored totals by a change; it goes in the change's batch. */
	change(bytes: number, nodes: number): D1PreparedStatement {
		return this.db.$client.prepare(UPSERT).bind(this.userId, bytes, nodes);
	}

	/** The stored node count moves by the rows the previous statement of the batch inserted (0 or 1): for INSERT OR IGNORE. */
	countInserted(): D1PreparedStatement {
		return this.db.$client.prepare(UPSERT_INSERTED).bind(this.userId);
	}

	/** After a batch landed: the totals in memory follow. */
	landed(bytes: number, nodes: number): void {
		if (this.#totals !== null) this.#totals = { versionBytes: this.#totals.versionBytes + bytes, nodes: this.#totals.nodes + nodes };
	}

	/** After a batch that may or may not have landed: read the totals again. */
	forget(): void {
		this.#totals = null;
	}
}

/** ?1 user, ?2 bytes, ?3 nodes. */
const UPSERT = `INSERT INTO user_usage (user_id, version_bytes, nodes) VALUES (?1, ?2, ?3)
	ON CONFLICT (user_id) DO UPDATE SET version_bytes = version_bytes + excluded.version_bytes, nodes = nodes + excluded.nodes`;
/** ?1 user; changes() is the row count of the statement before it in the batch. */
const UPSERT_INSERTED = `INSERT INTO user_usage (user_id, version_bytes, nodes) VALUES (?1, 0, changes())
	ON CONFLICT (user_id) DO UPDATE SET nodes = nodes + excluded.nodes`;

/**
 * A token bucket of writes: `burst` changes at once, then `perSecond`. It
 * bounds how fast one user can grow the journal and the shard. Kept in the
 * hub's memory: a restarted hub starts full, which only ever allows a burst.
 */
export class WriteBudget {
	#tokens: number;
	#at: number;

	constructor(
		private readonly burst: number,
		private readonly perSecond: number,
		now = Date.now(),
	) {
		this.#tokens = burst;
		this.#at = now;
	}

	/** Takes `n` writes, or says how many seconds until they are available. */
	take(n = 1, now = Date.now()): Result<void> {
		this.#tokens = Math.min(this.burst, this.#tokens + (Math.max(0, now - this.#at) / 1000) * this.perSecond);
		this.#at = Math.max(this.#at, now);
		if (this.#tokens >= n) {
			this.#tokens -= n;
			return ok(undefined);
		}
		const seconds = Math.max(1, Math.ceil((n - this.#tokens) / this.perSecond));
		return fail("RATE_LIMITED", `too many changes in a short time; retry in ${seconds} s`, [{ retry_after_seconds: seconds }]);
	}
}
