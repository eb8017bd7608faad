/**
 * Numbering a user's changes. Every change goes into the shard in the same
 * D1 batch (one transaction) as its journal entry under the next sequence
 * number, so a change and its number land together or not at all
 * (docs/decisions/0001).
 */
import { sql } from "drizzle-orm";
import { runBatch, type BatchQuery } from "../../src/shared/db/batch";
import { toNode } from "../../src/shared/db/mappers";
import type { NodeRow } from "../../src/shared/db/schema";
import type { Node } from "../../src/shared/schemas/nodes";
import type { ShardDb } from "../../src/shared/db/shards";
import type { ChangeKind } from "./contract";

// Static SQL bound directly: building these hot statements through
// drizzle costs more CPU than running them (docs/decisions/0010).
/** ?1 user, ?2 seq, ?3 kind, ?4 node id, ?5 node JSON, ?6 now, ?7 where a move came from (JSON): one change's journal entry. */
const JOURNAL_ENTRY = "INSERT INTO changes (user_id, seq, kind, node_id, node, created_at, previous) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
/** ?1 user, ?2 the seq floor, ?3 node id, ?4 node JSON, ?5 now: the next seq, only if the node row exists. */
const JOURNAL_IF_INSERTED = `INSERT INTO changes (user_id, seq, kind, node_id, node, created_at)
	SELECT ?1, MAX(?2, COALESCE((SELECT MAX(seq) FROM changes WHERE user_id = ?1), 0)) + 1, 'created', ?3, ?4, ?5
	WHERE EXISTS (SELECT 1 FROM nodes WHERE user_id = ?1 AND id = ?3)
	RETURNING seq`;

/** ?1 user, ?2 the seq floor, ?3 node ids (JSON array): the entries above the floor for those nodes, to learn whether a batch landed. */
const LANDED_ENTRIES = `SELECT seq, node_id FROM changes WHERE user_id = ?1 AND seq > ?2 AND node_id IN (SELECT value FROM json_each(?3))`;

/** ?1 user, ?2 seq, ?3 kind, ?4 node id, ?5 node JSON, ?6 now, ?7 reason: an entry in a share member's journal. */
const JOURNAL_ENTRY_WITH_REASON =
	"INSERT INTO changes (user_id, seq, kind, node_id, node, created_at, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/** A change as the journal records it: what the outbox of the user's shares needs to know (sharing.ts). */
export interface RecordedChange {
	kind: ChangeKind;
	after: NodeRow;
	/** For a move: the parent before it, so that a move out of (or into) a share is seen. */
	beforeParentId?: string | null;
	/** The row may not go in (a group of creations): the outbox row goes in only if it did. */
	onlyIfExists?: boolean;
}

/** Where the journal tells the user's shares about a change (workers/notify/sharing.ts). */
export interface FanOut {
	/** Statements that put the change in the outbox of every share it concerns, for the change's batch; none when nothing is shared. */
	statementsFor(change: RecordedChange): Promise<D1PreparedStatement[]>;
	/** A batch with outbox rows landed: deliver them. */
	landed(): void;
}

/** An entry written as given (a share member's view of the owner's change). */
export interface GivenEntry {
	kind: ChangeKind;
	node: Node;
	reason: string | null;
}

/** The journal of one user, as its UserHub writes it. The hub is its only writer. */
export class Journal {
	#seq: number | null = null;

	/**
	 * @param onAdvance told the new seq after every change that landed.
	 * @param fanOut where changes to shared nodes go, besides this journal.
	 */
	constructor(
		private readonly db: ShardDb,
		private readonly userId: string,
		private readonly onAdvance: (seq: number) => void,
		private readonly fanOut: FanOut | null = null,
	) {}

	/** The seq of the user's latest change (0 before any). */
	async currentSeq(): Promise<number> {
		if (this.#seq === null) {
			// Pruning may have emptied the journal; numbering must still continue
			// above the pruned floor, or every live cursor would look reset.
			const rows = await this.db.all<{ seq: number }>(sql`SELECT MAX(
				(SELECT COALESCE(MAX(seq), 0) FROM changes WHERE user_id = ${this.userId}),
				(SELECT COALESCE(MAX(pruned_through), 0) FROM journal_state WHERE user_id = ${this.userId})) AS seq`);
			this.#seq = rows[0]?.seq ?? 0;
		}
		return this.#seq;
	}

	/**
	 * Runs a change's statements and its journal entry in one D1 batch. The
	 * counter advances only after the batch commits.
	 */
	async apply(
		statements: (BatchQuery | D1PreparedStatement)[],
		kind: ChangeKind,
		after: NodeRow,
		options: { before?: { parentId: string | null; name: string } } = {},
	): Promise<void> {
		const seq = (await this.currentSeq()) + 1;
		const before = options.before;
		const outbox = this.fanOut ? await this.fanOut.statementsFor({ kind, after, ...(before && { beforeParentId: before.parentId }) }) : [];
		// Webhooks' file.moved says where from (the node JSON is the state after).
		const previous = before ? JSON.stringify({ parent_id: before.parentId, name: before.name }) : null;
		// created_at is when the change happened, not the node's mtime (a trash
		// keeps that): retention counts from here.
		const entry = this.db.$client
			.prepare(JOURNAL_ENTRY)
			.bind(this.userId, seq, kind, after.id, JSON.stringify(toNode(after)), new Date().toISOString(), previous);
		await this.#batch([...statements, entry, ...outbox], [{ seq, nodeId: after.id }]);
		this.#advance(seq);
		if (outbox.length > 0) this.fanOut?.landed();
	}

	/**
	 * Runs many changes in one D1 batch, each followed by its journal entry,
	 * numbered one after another: a batch of files (tree-ops.ts commitFiles).
	 * `frame.first` runs before them and `frame.last` after (statements the
	 * changes share). Fan-out is told once.
	 * @returns the seq of each change, in order.
	 */
	async applyMany(
		changes: { statements: (BatchQuery | D1PreparedStatement)[]; kind: ChangeKind; after: NodeRow }[],
		frame: { first: (BatchQuery | D1PreparedStatement)[]; last: (BatchQuery | D1PreparedStatement)[] },
	): Promise<number[]> {
		const first = (await this.currentSeq()) + 1;
		const now = new Date().toISOString();
		const statements = [...frame.first];
		const outbox: D1PreparedStatement[] = [];
		for (const [i, { statements: own, kind, after }] of changes.entries()) {
			statements.push(
				...own,
				this.db.$client.prepare(JOURNAL_ENTRY).bind(this.userId, first + i, kind, after.id, JSON.stringify(toNode(after)), now, null),
			);
			if (this.fanOut) outbox.push(...(await this.fanOut.statementsFor({ kind, after })));
		}
		const last = changes.at(-1);
		await this.#batch([...statements, ...frame.last, ...outbox], last ? [{ seq: first + changes.length - 1, nodeId: last.after.id }] : []);
		if (changes.length > 0) this.#advance(first + changes.length - 1);
		if (outbox.length > 0) this.fanOut?.landed();
		return changes.map((_, i) => first + i);
	}

	/**
	 * Runs statements with entries written as given, numbered in order, in one
	 * batch: how a share member's hub records the owner's changes.
	 */
	async applyEntries(statements: (BatchQuery | D1PreparedStatement)[], entries: GivenEntry[]): Promise<void> {
		const first = (await this.currentSeq()) + 1;
		const now = new Date().toISOString();
		const written = entries.map((e, i) =>
			this.db.$client
				.prepare(JOURNAL_ENTRY_WITH_REASON)
				.bind(this.userId, first + i, e.kind, e.node.id, JSON.stringify(e.node), now, e.reason),
		);
		const last = entries.at(-1);
		await this.#batch([...statements, ...written], last ? [{ seq: first + entries.length - 1, nodeId: last.node.id }] : []);
		if (entries.length > 0) this.#advance(first + entries.length - 1);
	}

	/**
	 * A group of creations whose rows may or may not go in (INSERT OR IGNORE):
	 * each `created` entry is numbered in SQL after the ones before it, and
	 * only if its row went in, so a refused creation leaves no gap.
	 * @param rows per creation, the statements that insert it (the row first) and the node after.
	 * @returns per creation, its seq, or null if its row did not go in.
	 */
	async applyCreations(rows: { statements: D1PreparedStatement[]; after: NodeRow }[]): Promise<(number | null)[]> {
		const floor = await this.currentSeq();
		const now = new Date().toISOString();
		const statements: D1PreparedStatement[] = [];
		const entryAt: number[] = [];
		const outbox: D1PreparedStatement[] = [];
		for (const { statements: inserts, after } of rows) {
			statements.push(...inserts);
			entryAt.push(statements.length);
			statements.push(this.db.$client.prepare(JOURNAL_IF_INSERTED).bind(this.userId, floor, after.id, JSON.stringify(toNode(after)), now));
			if (this.fanOut) outbox.push(...(await this.fanOut.statementsFor({ kind: "created", after, onlyIfExists: true })));
		}
		let seqs: (number | null)[];
		try {
			const results = await runBatch(this.db.$client, [...statements, ...outbox]);
			seqs = entryAt.map((at) => {
				const seq = (results[at]?.results[0] as { seq?: number } | undefined)?.seq;
				return typeof seq === "number" ? seq : null;
			});
		} catch (err) {
			this.#seq = null;
			// The answer may be lost after the batch committed: the entries it wrote say which rows went in.
			const landed = await this.#entriesOf(
				floor,
				rows.map((r) => r.after.id),
			).catch(() => null);
			if (landed === null || landed.size === 0) throw err;
			seqs = rows.map((r) => landed.get(r.after.id) ?? null);
		}
		if (outbox.length > 0) this.fanOut?.landed();
		const last = Math.max(floor, ...seqs.map((s) => s ?? floor));
		if (last > floor) this.#advance(last);
		return seqs;
	}

	/**
	 * Runs a batch that writes `expected` entries. When it fails, the journal
	 * says whether it committed anyway (a timeout after the commit, the
	 * answer lost): then the change stands and is answered as made, so the
	 * caller never turns a landed change into an error (docs/decisions/0033-failure-handling.md).
	 */
	async #batch(statements: (BatchQuery | D1PreparedStatement)[], expected: { seq: number; nodeId: string }[]): Promise<void> {
		try {
			await runBatch(this.db.$client, statements);
		} catch (err) {
			// Another writer may have advanced the journal (a hub restarted
			// elsewhere): reload the counter before the next change.
			this.#seq = null;
			const last = expected.at(-1);
			if (last === undefined) throw err;
			// The hub is the journal's only writer, so its entry at that seq, for that node, is this batch's.
			const landed = await this.#entriesOf(last.seq - 1, [last.nodeId]).catch(() => null);
			if (landed?.get(last.nodeId) !== last.seq) throw err;
		}
	}

	/** The seq of each of `nodeIds`' entries above `floor`, read from the primary. */
	async #entriesOf(floor: number, nodeIds: string[]): Promise<Map<string, number>> {
		const { results } = await this.db.$client
			.prepare(LANDED_ENTRIES)
			.bind(this.userId, floor, JSON.stringify(nodeIds))
			.all<{ seq: number; node_id: string }>();
		return new Map(results.map((r) => [r.node_id, r.seq]));
	}

	#advance(seq: number): void {
		this.#seq = seq;
		this.onAdvance(seq);
	}
}
