/**
 * The UserHub's sync channel: long-poll waiters, the WebSocket tickets and
 * sockets, and the frames that tell every device a change landed. Frames
 * carry cursors, never file bodies: devices fetch /v1/changes.
 */
import { randomBytes, sha256Hex, toBase64Url } from "../../src/shared/crypto";
import { failureResponse, fail } from "../../src/shared/errors";
import { encodeJournalCursor } from "../../src/shared/journal";
import type { ServerMessage } from "../../src/shared/schemas/sync";
import type { LongPollOutcome, SyncTicket } from "./contract";

/** Sync tickets live this long (seconds); they are single-use. */
export const TICKET_TTL_SECONDS = 60;

/** At most this many `changes` frames per second reach a device; bursts coalesce. */
const FRAMES_PER_SECOND = 4;

/** Above this many waiting long polls, answers carry a backoff hint. */
const LONGPOLL_BACKOFF_THRESHOLD = 200;

/** A sync ticket as stored in the hub's own storage until it is used or expires. */
interface TicketRecord {
	deviceId: string;
	expiresAt: number;
}

/** What a hibernating sync socket remembers about itself. */
interface SocketAttachment {
	deviceId: string;
}

interface Waiter {
	afterSeq: number;
	wake: () => void;
}

export class SyncChannel {
	#waiters = new Set<Waiter>();
	#lastBroadcastAt = 0;
	#broadcastTimer: ReturnType<typeof setTimeout> | null = null;
	#latest = 0;

	constructor(
		private readonly ctx: DurableObjectState,
		private readonly userId: string,
	) {}

	/** A change numbered `seq` landed: wakes long polls at once, and tells sockets at most FRAMES_PER_SECOND times a second. */
	announce(seq: number): void {
		this.#latest = Math.max(this.#latest, seq);
		for (const waiter of this.#waiters) if (waiter.afterSeq < seq) waiter.wake();
		if (this.#broadcastTimer !== null) return;
		const wait = this.#lastBroadcastAt + 1000 / FRAMES_PER_SECOND - Date.now();
		if (wait <= 0) this.#broadcast();
		else {
			this.#broadcastTimer = setTimeout(() => {
				this.#broadcastTimer = null;
				this.#broadcast();
			}, wait);
		}
	}

	/** Resolves as soon as the journal moves past `afterSeq` (now at `currentSeq`), or with `changes: false` after `timeoutMs`. */
	waitForChange(afterSeq: number, currentSeq: number, timeoutMs: number): Promise<LongPollOutcome> {
		const backoff = this.#waiters.size >= LONGPOLL_BACKOFF_THRESHOLD ? 5 + Math.floor(Math.random() * 10) : undefined;
		const answer = (changes: boolean): LongPollOutcome => (backoff === undefined ? { changes } : { changes, backoff });
		if (currentSeq > afterSeq) return Promise.resolve(answer(true));
		return new Promise((resolve) => {
			const waiter: Waiter = {
				afterSeq,
				wake: () => {
					clearTimeout(timer);
					this.#waiters.delete(waiter);
					resolve(answer(true));
				},
			};
			const timer = setTimeout(() => {
				this.#waiters.delete(waiter);
				resolve(answer(false));
			}, timeoutMs);
			this.#waiters.add(waiter);
		});
	}

	/** Issues a single-use ticket that lets `deviceId` open the sync WebSocket. */
	async issueTicket(deviceId: string): Promise<SyncTicket> {
		const ticket = `${this.userId}.${toBase64Url(randomBytes(32))}`;
		const now = Date.now();
		const record: TicketRecord = { deviceId, expiresAt: now + TICKET_TTL_SECONDS * 1000 };
		// Only the ticket's hash is stored; drop expired ones while here.
		const stale = [...(await this.ctx.storage.list<TicketRecord>({ prefix: "ticket:" }))]
			.filter(([, r]) => r.expiresAt <= now)
			.map(([k]) => k);
		if (stale.length > 0) await this.ctx.storage.delete(stale);
		await this.ctx.storage.put(`ticket:${await sha256Hex(ticket)}`, record);
		return { ticket, expiresIn: TICKET_TTL_SECONDS };
	}

	/**
	 * Accepts the WebSocket upgrade of a ticket holder, and greets the socket
	 * with the cursor of the latest change (`currentSeq`, read only once the
	 * ticket is good).
	 */
	async accept(request: Request, currentSeq: () => Promise<number>): Promise<Response> {
		if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
			return failureResponse(fail("INVALID_REQUEST", "expected a WebSocket upgrade").error, "hub");
		const ticket = new URL(request.url).searchParams.get("ticket") ?? "";
		const key = `ticket:${await sha256Hex(ticket)}`;
		const record = await this.ctx.storage.get<TicketRecord>(key);
		const refused = fail("UNAUTHENTICATED", "the ticket is unknown, used or expired").error;
		if (!record) return failureResponse(refused, "hub");
		await this.ctx.storage.delete(key);
		if (record.expiresAt <= Date.now()) return failureResponse(refused, "hub");
		const seq = await currentSeq();
		const pair = new WebSocketPair();
		const [client, server] = [pair[0], pair[1]];
		this.ctx.acceptWebSocket(server, [record.deviceId]);
		server.serializeAttachment({ deviceId: record.deviceId } satisfies SocketAttachment);
		server.send(JSON.stringify({ type: "hello", cursor: encodeJournalCursor({ userId: this.userId, seq }) } satisfies ServerMessage));
		return new Response(null, { status: 101, webSocket: client });
	}

	/** Closes a device's open sync sockets (it signed out). */
	disconnect(deviceId: string): void {
		for (const ws of this.ctx.getWebSockets(deviceId)) ws.close(4001, "signed out");
	}

	#broadcast(): void {
		if (this.#latest === 0) return;
		this.#lastBroadcastAt = Date.now();
		const frame = JSON.stringify({
			type: "changes",
			cursor: encodeJournalCursor({ userId: this.userId, seq: this.#latest }),
		} satisfies ServerMessage);
		for (const ws of this.ctx.getWebSockets()) {
			try {
				ws.send(frame);
			} catch (err) {
				console.error("broadcast", err);
			}
		}
	}
}
