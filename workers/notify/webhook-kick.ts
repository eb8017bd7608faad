/**
 * Tells the webhook fan-out that the user's journal advanced
 * (docs/decisions/0028-webhooks.md). A kick names the user, not a change: the
 * fan-out reads the journal from each endpoint's cursor. So kicks coalesce
 * (one at once, then at most one per window for whatever landed meanwhile),
 * no commit waits for one, and a lost kick only delays events until the
 * cron's re-kick.
 */
import { redactedCause } from "../../src/shared/log";
import type { ShardDb } from "../../src/shared/db/shards";
import type { FanOutKick } from "./contract";

/**
 * After a kick, changes wait this long for the next one: the first change of
 * a quiet spell is kicked at once, and a burst adds at most this much to its
 * events' latency.
 */
export const KICK_WINDOW_MS = 50;

const HAS_ENDPOINTS = "SELECT 1 AS one FROM webhook_endpoints WHERE user_id = ?1 AND status = 'enabled' LIMIT 1";

export class WebhookKick {
	/** Whether the user has an enabled endpoint; looked up once, again after {@link forget}. */
	#enabled: Promise<boolean> | null = null;
	#sending = false;
	#again = false;

	constructor(
		private readonly db: ShardDb,
		private readonly kick: FanOutKick,
		private readonly queue: Queue<FanOutKick> | undefined,
		private readonly waitUntil: (work: Promise<unknown>) => void,
	) {}

	/** The user's endpoints changed: look them up again before the next kick. */
	forget(): void {
		this.#enabled = null;
	}

	/** The journal advanced: kick the fan-out, without holding up the change. */
	changed(): void {
		if (!this.queue) return;
		if (this.#sending) {
			this.#again = true;
			return;
		}
		this.#sending = true;
		this.waitUntil(this.#send(this.queue));
	}

	async #send(queue: Queue<FanOutKick>): Promise<void> {
		try {
			do {
				this.#again = false;
				// No return on "none": an endpoint enabled meanwhile sets #again, and must get its kick.
				if (await this.#hasEndpoints()) {
					await queue.send(this.kick);
					// At most one kick a window: a burst of changes costs the fan-out one read, not one per change.
					await new Promise((resolve) => setTimeout(resolve, KICK_WINDOW_MS));
				}
			} while (this.#again);
		} catch (err) {
			// The cron re-kicks every endpoint behind its user's journal.
			console.error(JSON.stringify({ hub: this.kick.user, webhooks: "kick", error: redactedCause(err) }));
		} finally {
			this.#sending = false;
		}
	}

	#hasEndpoints(): Promise<boolean> {
		this.#enabled ??= this.db.$client
			.prepare(HAS_ENDPOINTS)
			.bind(this.kick.user)
			.first<{ one: number }>()
			.then(
				(row) => row !== null,
				(err: unknown) => {
					this.#enabled = null;
					throw err;
				},
			);
		return this.#enabled;
	}
}
