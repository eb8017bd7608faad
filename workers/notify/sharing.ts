/**
 * Sharing, as the owner's UserHub keeps it (docs/decisions/0024): who may
 * touch which of the owner's nodes, and the outbox that carries every change
 * to a shared node to each member's hub. The hub is the only writer of its
 * shares, so the copy it keeps in memory is exact, like its usage totals.
 *
 * Delivery runs outside the hub's queue and never waits inside it: a member's
 * hub applies what it is sent in its own queue, and never calls back. It is
 * at least once (a failure retries from the outbox, on an alarm); the member
 * skips what it has applied already, so each change lands once per member.
 */
import { sql } from "drizzle-orm";
import { toNode } from "../../src/shared/db/mappers";
import type { NodeRow } from "../../src/shared/db/schema";
import type { ShardDb } from "../../src/shared/db/shards";
import { ancestry, ancestryStatement, type AncestryRow, findNodeStatement, readAncestry, readNode } from "../../src/shared/db/tree";
import type { FanOut, RecordedChange } from "./journal";

export type Role = "viewer" | "editor";

export interface MemberState {
	memberId: string;
	email: string;
	role: Role;
	addedAt: string;
	removedAt: string | null;
}

export interface ShareState {
	id: string;
	nodeId: string;
	createdAt: string;
	members: Map<string, MemberState>;
}

/** A grant found for a member on a node: the covering share with the highest role. */
export interface Grant {
	role: Role;
	shareId: string;
	rootId: string;
}

/** One outbox row, as a member's hub receives it. */
export interface ShareEvent {
	id: number;
	event: string;
	visibility: "in" | "out" | "both";
	memberId: string | null;
	node: string;
	details: string | null;
}

/** What the owner's hub sends a member's hub: events of one share, in order. */
export interface ShareDelivery {
	ownerId: string;
	shareId: string;
	events: ShareEvent[];
}

/** ?1 owner, ?2 share, ?3 member or NULL, ?4 event, ?5 visibility, ?6 node id, ?7 node JSON, ?8 details, ?9 now. */
const INSERT_OUTBOX = `INSERT INTO share_outbox (owner_id, share_id, member_id, event, visibility, node_id, node, details, created_at)
	VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)`;
/** The same, only if the node's row exists (a creation that may not have gone in). */
const INSERT_OUTBOX_IF_NODE = `INSERT INTO share_outbox (owner_id, share_id, member_id, event, visibility, node_id, node, details, created_at)
	SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9 WHERE EXISTS (SELECT 1 FROM nodes WHERE user_id = ?1 AND id = ?6)`;

/** Members a share may have; each change costs one delivery per member. */
export const MAX_MEMBERS_PER_SHARE = 100;
/** Shares one owner may make. */
export const MAX_SHARES_PER_USER = 1000;

const ROLE_RANK: Record<Role, number> = { viewer: 1, editor: 2 };

/** The owner's shares and their members, loaded once, kept by the hub as it changes them. */
export class Sharing implements FanOut {
	#byNode: Map<string, ShareState> | null = null;
	#loading: Promise<Map<string, ShareState>> | null = null;

	/** @param onOutbox told when a batch with outbox rows landed: deliver them. */
	constructor(
		private readonly db: ShardDb,
		private readonly ownerId: string,
		private readonly onOutbox: () => void,
	) {}

	/** Every share of the owner, by the node it shares. */
	async shares(): Promise<Map<string, ShareState>> {
		if (this.#byNode) return this.#byNode;
		this.#loading ??= this.#load().finally(() => (this.#loading = null));
		return this.#loading;
	}

	async #load(): Promise<Map<string, ShareState>> {
		const rows = await this.db.all<{
			id: string;
			node_id: string;
			created_at: string;
			member_id: string | null;
			email: string | null;
			role: Role | null;
			added_at: string | null;
			removed_at: string | null;
		}>(sql`SELECT s.id, s.node_id, s.created_at, m.member_id, m.email, m.role, m.added_at, m.removed_at
			FROM shares s LEFT JOIN share_members m ON m.share_id = s.id WHERE s.owner_id = ${this.ownerId}`);
		const byNode = new Map<string, ShareState>();
		for (const r of rows) {
			let share = byNode.get(r.node_id);
			if (!share) {
				share = { id: r.id, nodeId: r.node_id, createdAt: r.created_at, members: new Map() };
				byNode.set(r.node_id, share);
			}
			if (r.member_id !== null && r.role !== null)
				share.members.set(r.member_id, {
					memberId: r.member_id,
					email: r.email ?? "",
					role: r.role,
					addedAt: r.added_at ?? r.created_at,
					removedAt: r.removed_at,
				});
		}
		this.#byNode = byNode;
		return byNode;
	}

	/** Forgets the copy in memory (a batch that failed may or may not have landed). */
	forget(): void {
		this.#byNode = null;
	}

	/** The share with this id, if the owner has it. */
	async byId(shareId: string): Promise<ShareState | null> {
		for (const share of (await this.shares()).values()) if (share.id === shareId) return share;
		return null;
	}

	/**
	 * The member's grant on a node whose chain (root first, the node last) is
	 * given: the highest role among the shares along it. A trashed node on the
	 * way from the share's root down means no grant, unless `trashedToo`.
	 */
	async grantOn(memberId: string, chain: { id: string; trashed: boolean }[], trashedToo = false): Promise<Grant | null> {
		const shares = await this.shares();
		if (shares.size === 0) return null;
		let best: Grant | null = null;
		for (const [i, link] of chain.entries()) {
			const share = shares.get(link.id);
			const member = share?.members.get(memberId);
			if (!share || !member || member.removedAt !== null) continue;
			if (!trashedToo && chain.slice(i).some((n) => n.trashed)) continue;
			if (!best || ROLE_RANK[member.role] > ROLE_RANK[best.role]) best = { role: member.role, shareId: share.id, rootId: share.nodeId };
		}
		return best;
	}

	/** The member's grant on a node of the owner, read from the shard (one query). */
	async grantOnNode(memberId: string, nodeId: string, trashedToo = false): Promise<Grant | null> {
		if ((await this.shares()).size === 0) return null;
		return this.grantOn(memberId, await ancestry(this.db, this.ownerId, nodeId), trashedToo);
	}

	/** True when the node, or a folder above it, is shared. */
	async isShared(nodeId: string): Promise<boolean> {
		const shares = await this.shares();
		if (shares.size === 0) return false;
		return (await ancestry(this.db, this.ownerId, nodeId)).some((n) => shares.has(n.id));
	}

	/** Shares whose root is the node or a folder above it, given the chain of its parent. */
	async #covering(nodeId: string, parentId: string | null | undefined): Promise<Set<ShareState>> {
		const shares = await this.shares();
		const covering = new Set<ShareState>();
		const own = shares.get(nodeId);
		if (own) covering.add(own);
		const chain = parentId ? await ancestry(this.db, this.ownerId, parentId) : [];
		for (const n of chain) {
			const share = shares.get(n.id);
			if (share) covering.add(share);
		}
		return covering;
	}

	async statementsFor(change: RecordedChange): Promise<D1PreparedStatement[]> {
		const shares = await this.shares();
		if (shares.size === 0) return [];
		const after = await this.#covering(change.after.id, change.after.parentId);
		const before = change.beforeParentId === undefined ? after : await this.#covering(change.after.id, change.beforeParentId);
		const node = JSON.stringify(toNode(change.after));
		const now = new Date().toISOString();
		const sqlText = change.onlyIfExists ? INSERT_OUTBOX_IF_NODE : INSERT_OUTBOX;
		const statements = await this.#sharesInside(change, now);
		for (const share of new Set([...before, ...after])) {
			if (share.members.size === 0) continue;
			const visibility = before.has(share) && after.has(share) ? "both" : after.has(share) ? "in" : "out";
			statements.push(
				this.db.$client.prepare(sqlText).bind(this.ownerId, share.id, null, change.kind, visibility, change.after.id, node, null, now),
			);
		}
		return statements;
	}

	landed(): void {
		this.onOutbox();
	}

	/**
	 * A folder trashed, restored or deleted forever takes the shares inside
	 * it along: their members hear it as a change of the shared node itself
	 * (their mount goes, or comes back).
	 */
	async #sharesInside(change: RecordedChange, now: string): Promise<D1PreparedStatement[]> {
		if (change.after.type !== "folder" || !["trashed", "restored", "deleted"].includes(change.kind)) return [];
		const inside = [...(await this.shares()).values()].filter((s) => s.nodeId !== change.after.id && s.members.size > 0);
		if (inside.length === 0) return [];
		const chains = await this.db.$client.batch<AncestryRow>(inside.map((s) => ancestryStatement(this.db, this.ownerId, s.nodeId)));
		const under = inside.filter((_, i) => readAncestry(chains[i]?.results ?? []).some((a) => a.id === change.after.id));
		if (under.length === 0) return [];
		const roots = await this.db.$client.batch<Record<string, unknown>>(
			under.map((s) => findNodeStatement(this.db, this.ownerId, s.nodeId)),
		);
		return under.flatMap((share, i) => {
			const first = roots[i]?.results[0];
			const root = first ? readNode(first) : null;
			if (!root) return [];
			// The shared node as the change leaves it (a trash marks the whole subtree).
			const after = {
				...root,
				trashedAt: change.kind === "trashed" ? (change.after.trashedAt ?? now) : change.kind === "restored" ? null : root.trashedAt,
			};
			return [
				this.db.$client
					.prepare(INSERT_OUTBOX)
					.bind(this.ownerId, share.id, null, change.kind, "both", root.id, JSON.stringify(toNode(after)), null, now),
			];
		});
	}

	/** An outbox row for one member (added, role changed, removed), for a batch. */
	memberEvent(
		share: { id: string },
		memberId: string,
		event: "member_added" | "role_changed" | "member_removed",
		root: NodeRow,
		details: Record<string, unknown>,
	): D1PreparedStatement {
		return this.db.$client
			.prepare(INSERT_OUTBOX)
			.bind(
				this.ownerId,
				share.id,
				memberId,
				event,
				"both",
				root.id,
				JSON.stringify(toNode(root)),
				JSON.stringify(details),
				new Date().toISOString(),
			);
	}
}

/**
 * Carries the outbox to members' hubs: one delivery chain per member, in
 * outbox order, never inside the owner's queue. A failure leaves the rest in
 * the outbox for the next attempt.
 */
export class Deliverer {
	#running: Promise<boolean> | null = null;
	#again = false;

	constructor(
		private readonly db: ShardDb,
		private readonly ownerId: string,
		private readonly send: (memberId: string, delivery: ShareDelivery) => Promise<number>,
	) {}

	/** Delivers everything pending; resolves false if something failed (retry later). */
	run(): Promise<boolean> {
		if (this.#running) {
			this.#again = true;
			return this.#running;
		}
		this.#running = this.#loop().finally(() => (this.#running = null));
		return this.#running;
	}

	async #loop(): Promise<boolean> {
		let allDelivered: boolean;
		do {
			this.#again = false;
			allDelivered = await this.#pass();
		} while (this.#again && allDelivered);
		return allDelivered;
	}

	async #pass(): Promise<boolean> {
		const pending = await this.db.all<{ share_id: string; member_id: string; delivered_id: number; removed: number; last: number }>(sql`
			SELECT m.share_id, m.member_id, m.delivered_id, m.removed_at IS NOT NULL AS removed,
				(SELECT MAX(id) FROM share_outbox o WHERE o.share_id = m.share_id) AS last
			FROM share_members m WHERE m.owner_id = ${this.ownerId}
				AND m.delivered_id < COALESCE((SELECT MAX(id) FROM share_outbox o WHERE o.share_id = m.share_id), 0)`);
		if (pending.length === 0) return true;
		// Each share's rows are read once, from its least delivered member on: members share them.
		const byShare = new Map<string, typeof pending>();
		for (const p of pending) byShare.set(p.share_id, [...(byShare.get(p.share_id) ?? []), p]);
		const rowsOf = new Map<string, { rows: OutboxRow[]; through: number; full: boolean }>();
		await Promise.all(
			[...byShare.entries()].map(async ([shareId, members]) => {
				const from = Math.min(...members.map((m) => m.delivered_id));
				const last = Math.max(...members.map((m) => m.last));
				const rows = await this.db.all<OutboxRow>(sql`SELECT id, event, visibility, member_id, node, details FROM share_outbox
					WHERE share_id = ${shareId} AND id > ${from} AND id <= ${last} ORDER BY id LIMIT ${EVENTS_PER_PASS}`);
				const full = rows.length === EVENTS_PER_PASS;
				if (full) this.#again = true;
				rowsOf.set(shareId, { rows, through: full ? (rows.at(-1)?.id ?? from) : last, full });
			}),
		);
		const byMember = new Map<string, typeof pending>();
		for (const p of pending) byMember.set(p.member_id, [...(byMember.get(p.member_id) ?? []), p]);
		const reached: { shareId: string; memberId: string; through: number; leaves: boolean }[] = [];
		const outcomes = await Promise.all(
			[...byMember.entries()].map(async ([memberId, list]) => {
				try {
					for (const p of list) {
						const { rows, through, full } = rowsOf.get(p.share_id) ?? { rows: [], through: p.delivered_id, full: false };
						// A removed member hears everything up to its removal, then nothing more.
						const removal =
							p.removed === 1
								? rows.find((r) => r.id > p.delivered_id && r.member_id === memberId && r.event === "member_removed")
								: undefined;
						// Removed, and told so already (a pass that stopped before dropping the row): nothing more.
						const told = p.removed === 1 && removal === undefined && !full;
						const until = told ? through : (removal?.id ?? through);
						const events = told
							? []
							: rows.filter((r) => r.id > p.delivered_id && r.id <= until && (r.member_id === null || r.member_id === memberId));
						if (events.length > 0) await this.send(memberId, { ownerId: this.ownerId, shareId: p.share_id, events: events.map(toEvent) });
						reached.push({ shareId: p.share_id, memberId, through: until, leaves: removal !== undefined || told });
					}
					return true;
				} catch (err) {
					console.error(JSON.stringify({ hub: this.ownerId, delivery: memberId, error: String(err) }));
					return false;
				}
			}),
		);
		// What each member got, in one batch: their watermarks, the removed members who heard of it, the outbox below every watermark.
		const statements: D1PreparedStatement[] = [];
		for (const shareId of new Set(reached.map((r) => r.shareId))) {
			const here = reached.filter((r) => r.shareId === shareId);
			statements.push(
				this.db.$client.prepare(SET_DELIVERED).bind(shareId, JSON.stringify(here.map((r) => [r.memberId, r.through]))),
				this.db.$client.prepare(DROP_DEPARTED).bind(shareId, JSON.stringify(here.filter((r) => r.leaves).map((r) => r.memberId))),
			);
		}
		statements.push(this.db.$client.prepare(PRUNE_OUTBOX).bind(this.ownerId));
		await this.db.$client.batch(statements);
		return outcomes.every(Boolean);
	}
}

interface OutboxRow {
	id: number;
	event: string;
	visibility: "in" | "out" | "both";
	member_id: string | null;
	node: string;
	details: string | null;
}

function toEvent(r: OutboxRow): ShareEvent {
	return { id: r.id, event: r.event, visibility: r.visibility, memberId: r.member_id, node: r.node, details: r.details };
}

/** Outbox rows read per share per pass. */
const EVENTS_PER_PASS = 1000;
/** ?1 share, ?2 JSON [[member, delivered through], …]. */
const SET_DELIVERED = `UPDATE share_members SET delivered_id = MAX(delivered_id,
		(SELECT json_extract(j.value, '$[1]') FROM json_each(?2) j WHERE json_extract(j.value, '$[0]') = share_members.member_id))
	WHERE share_id = ?1 AND member_id IN (SELECT json_extract(value, '$[0]') FROM json_each(?2))`;
/** ?1 share, ?2 JSON [member, …]: removed members that heard of their removal. */
const DROP_DEPARTED = `DELETE FROM share_members WHERE share_id = ?1 AND removed_at IS NOT NULL AND member_id IN (SELECT value FROM json_each(?2))`;
/** ?1 owner: outbox rows every member of their share has. */
const PRUNE_OUTBOX = `DELETE FROM share_outbox WHERE owner_id = ?1
	AND id <= COALESCE((SELECT MIN(delivered_id) FROM share_members m WHERE m.share_id = share_outbox.share_id), id)`;
