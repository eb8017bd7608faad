/**
 * The UserHub's queue: every change of a user's tree runs here, one at a
 * time, in arrival order.
 *
 * Why explicit serialization: a Durable Object's input gate only holds while
 * it awaits its own storage. While a commit awaits D1, another RPC call can
 * start, so commits wait in this queue instead.
 *
 * Consecutive jobs of one {@link Batchable} kind run as one group: a commit
 * holds the queue for its D1 round trip, so one round trip for many is what
 * lifts a user's commit rate (docs/decisions/0010).
 *
 * Every job has a deadline: a D1 call that never answers must not hold the
 * queue, and every commit behind it, forever (docs/decisions/0033-failure-handling.md).
 */
import { withDeadline } from "../../src/shared/transient";

/**
 * How long one job may hold the queue, in ms. Above D1's own 30 s limit on a
 * query or batch, so a query D1 would still answer is never cut off; tests
 * of a hung D1 lower it (test/notify/faults-*.test.ts).
 */
export const commitDeadline = { ms: 45_000 };

/** A queued item waiting for its answer. */
export interface Pending<I, R> {
	item: I;
	resolve(result: R): void;
	reject(err: unknown): void;
}

/** A kind of job whose consecutive items may share one run. */
export interface Batchable<I, R> {
	/** At most this many items per run. */
	readonly maxGroup: number;
	/** Settles every entry; a throw rejects those it did not settle. */
	run(entries: Pending<I, R>[]): Promise<void>;
}

type Job =
	| { kind: "task"; run: () => Promise<void>; fail: (err: unknown) => void }
	| { kind: "grouped"; batch: Batchable<unknown, unknown>; pending: Pending<unknown, unknown> };

export class CommitQueue {
	#jobs: Job[] = [];
	#draining = false;

	/** @param deadline how long one job may run before its callers are answered with DeadlineExceeded and the next job starts. */
	constructor(private readonly deadline: { readonly ms: number } = commitDeadline) {}

	/** Runs `task` when every job queued before it has finished. */
	run<T>(task: () => Promise<T>): Promise<T> {
		return new Promise((resolve, reject) => {
			// Promise.resolve().then: a task that throws before its first await
			// still rejects its own caller, and never escapes into #drain.
			this.#jobs.push({ kind: "task", run: () => Promise.resolve().then(task).then(resolve, reject), fail: reject });
			void this.#drain();
		});
	}

	/** Queues `item`, to run together with the items of `batch` queued right before or after it. */
	join<I, R>(batch: Batchable<I, R>, item: I): Promise<R> {
		return new Promise<R>((resolve, reject) => {
			const pending: Pending<I, R> = { item, resolve, reject };
			this.#jobs.push({ kind: "grouped", batch: batch as Batchable<unknown, unknown>, pending: pending as Pending<unknown, unknown> });
			void this.#drain();
		});
	}

	async #drain(): Promise<void> {
		if (this.#draining) return;
		this.#draining = true;
		try {
			for (let job = this.#jobs.shift(); job !== undefined; job = this.#jobs.shift()) {
				if (job.kind === "task") {
					// job.run never rejects (it settles its caller), so only the deadline lands in the catch.
					await this.#bounded(job.run()).catch((err: unknown) => job.fail(err));
					continue;
				}
				const { batch } = job;
				const group = [job.pending];
				for (
					let next = this.#jobs[0];
					group.length < batch.maxGroup && next?.kind === "grouped" && next.batch === batch;
					next = this.#jobs[0]
				) {
					this.#jobs.shift();
					group.push(next.pending);
				}
				try {
					await this.#bounded(batch.run(group));
				} catch (err) {
					// Settling twice is a no-op, so entries already answered keep their answer.
					for (const pending of group) pending.reject(err);
				}
			}
		} finally {
			this.#draining = false;
		}
	}

	#bounded(work: Promise<void>): Promise<void> {
		return withDeadline(work, this.deadline.ms, "a change of the user's tree");
	}
}
