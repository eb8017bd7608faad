/**
 * Group commit for progress records: one D1 batch per stored block cost a
 * round trip per MiB, so records that arrive while a write is running wait
 * and go together in the next one. Writes run one at a time, in order. With
 * `minGroup`, a write also waits until that many records are pending (or
 * {@link drain} is called): fewer writes, for records whose loss in a crash
 * only costs a retry.
 */
export class Coalescer<T> {
	#pending: T[] = [];
	#chain: Promise<void> = Promise.resolve();
	#queued = false;
	#failed = false;
	#failure: unknown = null;

	/** @param write persists one group; a throw stops all later writes, and {@link drain} rethrows it. */
	constructor(
		private readonly write: (items: T[]) => Promise<void>,
		private readonly minGroup = 1,
	) {}

	/** Queues `item` for the next write. */
	add(item: T): void {
		this.#pending.push(item);
		if (this.#pending.length >= this.minGroup) this.#schedule();
	}

	#schedule(): void {
		if (this.#queued) return;
		this.#queued = true;
		this.#chain = this.#chain.then(async () => {
			this.#queued = false;
			const items = this.#pending;
			this.#pending = [];
			if (items.length === 0 || this.#failed) return;
			try {
				await this.write(items);
			} catch (err) {
				this.#failed = true;
				this.#failure = err;
			}
		});
	}

	/** Writes what is pending and waits until everything added so far is written; throws the first failure. */
	async drain(): Promise<void> {
		this.#schedule();
		await this.#chain;
		if (this.#failed) throw this.#failure;
	}

	/** Like {@link drain}, without throwing: for callers that are already failing. */
	async settle(): Promise<void> {
		this.#schedule();
		await this.#chain;
	}
}

/**
 * Progress records (stored blocks) per D1 write, for the upload paths: one
 * D1 write per group instead of per block (docs/decisions/0011). A request
 * that ends, even by breaking, writes what is pending before it answers
 * (outliveClient in body.ts), so only a crash of the Worker forgets about
 * this many stored blocks, which the client then sends again.
 */
export const PROGRESS_GROUP = 8;
