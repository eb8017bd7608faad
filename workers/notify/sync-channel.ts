/**
 * The UserHub's sync channel: long-poll waiters, the WebSocket tickets and
 * sockets, and the frames that tell every device a change landed. Frames
 * carry cursors, never file bodies: devices fetch /v1/changes.
 */
import { randomBytes, toBase64Url } from "../../src/shared/crypto";
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
/** Long polls one hub holds at once; past it a poll answers at once, with the backoff hint (audit L10). */
const MAX_WAITERS = 1_000;
/** Open sockets per device (a browser's tabs share one); a new one closes the device's oldest, so a reconnect is never locked out by its own half-dead socket. */
export const MAX_SOCKETS_PER_DEVICE = 10;
/** Open sockets per hub, every device together; past it an upgrade is refused with 429 and the client long-polls instead. */
export const MAX_SOCKETS_PER_HUB = 1_000;

/** A sync ticket as stored in the hub's own storage until it is used or expires. */
interface TicketRecord {
	deviceId: string;
	expiresAt: number;
}

/**
 * The api worker passes these on the WebSocket upgrade it forwards, once it
 * has verified the ticket's signature: the hub's part of the ticket, and the
 * request id for error envelopes.
 */
export const HUB_TICKET_HEADER = "Drive-Hub-Ticket";
export const REQUEST_ID_HEADER = "Drive-Request-Id";

const HUB_TICKET_RE = /^([0-9]{13,15})\.([A-Za-z0-9_-]{22})$/;

/** The expiry (epoch ms) and nonce of the hub's part of a ticket, `<expiresAt>.<nonce>`, or null if malformed. */
export function parseHubTicket(hubTicket: string): { expiresAt: number; nonce: string } | null {
	const match = HUB_TICKET_RE.exec(hubTicket);
	if (!match?.[1] || !match[2]) return null;
	return { expiresAt: Number(match[1]), nonce: match[2] };
}

/** Storage keys sort by expiry, so the expired tickets are one range read away. */
function ticketKey(expiresAt: number, nonce = ""): string {
	return `ticket:${String(expiresAt).padStart(15, "0")}:${nonce}`;
}

/** At most this many expired tickets are dropped per issue: each issue pays for about one. */
const EXPIRED_TICKETS_PER_ISSUE = 64;

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
	/** Devices signed out while this instance lives: an upgrade racing the sign-out is refused. */
	readonly #signedOut = new Set<string>();

	/**
	 * @param bookmark the hub's latest `<shard>.<bookmark>`: frames and long-poll answers carry it, so that a
	 *   device told of a change reads at least that far (docs/decisions/0031-read-your-writes-with-bookmarks.md).
	 */
	constructor(
		private readonly ctx: DurableObjectState,
		private readonly userId: string,
		private readonly bookmark: () => string | undefined,
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
		const answer = (changes: boolean): LongPollOutcome => {
			const out: LongPollOutcome = backoff === undefined ? { changes } : { changes, backoff };
			const bookmark = this.bookmark();
			if (bookmark !== undefined) out.bookmark = bookmark;
			return out;
		};
		if (currentSeq > afterSeq) return Promise.resolve(answer(true));
		if (this.#waiters.size >= MAX_WAITERS) return Promise.resolve(answer(false));
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

	/**
	 * Issues the hub's part of a single-use ticket that lets `deviceId` open
	 * the sync WebSocket, `<expiresAt>.<nonce>`; the api worker signs it.
	 */
	async issueTicket(deviceId: string): Promise<SyncTicket> {
		const now = Date.now();
		const expired = await this.ctx.storage.list({ start: "ticket:", end: ticketKey(now + 1), limit: EXPIRED_TICKETS_PER_ISSUE });
		if (expired.size > 0) await this.ctx.storage.delete([...expired.keys()]);
		const record: TicketRecord = { deviceId, expiresAt: now + TICKET_TTL_SECONDS * 1000 };
		const nonce = toBase64Url(randomBytes(16));
		await this.ctx.storage.put(ticketKey(record.expiresAt, nonce), record);
		return { ticket: `${record.expiresAt}.${nonce}`, expiresIn: TICKET_TTL_SECONDS };
	}

	/**
	 * Accepts the WebSocket upgrade of a ticket holder, and greets the socket
	 * with the cursor of the latest change (`currentSeq`, read only once the
	 * ticket is good). The api worker has verified the ticket's signature and
	 * its device; here it is used up.
	 */
	async accept(request: Request, currentSeq: () => Promise<number>): Promise<Response> {
		const requestId = request.headers.get(REQUEST_ID_HEADER) ?? "hub";
		if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
			return failureResponse(fail("INVALID_REQUEST", "expected a WebSocket upgrade").error, requestId);
		const refused = failureResponse(fail("UNAUTHENTICATED", "the ticket is unknown, used or expired").error, requestId);
		const parsed = parseHubTicket(request.headers.get(HUB_TICKET_HEADER) ?? "");
		if (!parsed) return refused;
		const key = ticketKey(parsed.expiresAt, parsed.nonce);
		const record = await this.ctx.storage.get<TicketRecord>(key);
		if (!record) return refused;
		await this.ctx.storage.delete(key);
		if (record.expiresAt <= Date.now()) return refused;
		const seq = await currentSeq();
		if (this.#signedOut.has(record.deviceId)) return refused;
		const open = this.ctx.getWebSockets(record.deviceId);
		if (open.length < MAX_SOCKETS_PER_DEVICE && this.ctx.getWebSockets().length >= MAX_SOCKETS_PER_HUB)
			return failureResponse(
				fail("RATE_LIMITED", `at most ${MAX_SOCKETS_PER_HUB} sync sockets per user; long-poll instead`).error,
				requestId,
			);
		for (const old of open.slice(0, Math.max(0, open.length - MAX_SOCKETS_PER_DEVICE + 1)))
			old.close(4002, "replaced by a newer connection");
		const pair = new WebSocketPair();
		const [client, server] = [pair[0], pair[1]];
		this.ctx.acceptWebSocket(server, [record.deviceId]);
		server.serializeAttachment({ deviceId: record.deviceId } satisfies SocketAttachment);
		server.send(JSON.stringify(this.#frame("hello", seq)));
		return new Response(null, { status: 101, webSocket: client });
	}

	/** Closes a device's open sync sockets, and refuses its upgrades still in flight (it signed out). */
	disconnect(deviceId: string): void {
		this.#signedOut.add(deviceId);
		for (const ws of this.ctx.getWebSockets(deviceId)) ws.close(4001, "signed out");
	}

	#broadcast(): void {
		if (this.#latest === 0) return;
		this.#lastBroadcastAt = Date.now();
		const frame = JSON.stringify(this.#frame("changes", this.#latest));
		for (const ws of this.ctx.getWebSockets()) {
			try {
				ws.send(frame);
			} catch (err) {
				console.error("broadcast", err);
			}
		}
	}

	/** A `hello` or `changes` frame: the cursor of `seq`, and the bookmark to read it at. */
	#frame(type: "hello" | "changes", seq: number): ServerMessage {
		const bookmark = this.bookmark();
		const cursor = encodeJournalCursor({ userId: this.userId, seq });
		return bookmark === undefined ? { type, cursor } : { type, cursor, bookmark };
	}
}
