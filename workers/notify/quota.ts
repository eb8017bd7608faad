/**
 * The bytes a user's files take, kept as a running total by the UserHub.
 * The hub is the only writer of the user's tree, so once loaded the total
 * stays exact without summing every file on every commit.
 */
import { quotaExceeded } from "../../src/shared/commit/failures";
import { ok, type Result } from "../../src/shared/errors";

export class QuotaCounter {
	#used: number | null = null;

	/** @param load reads the total from the shard. */
	constructor(private readonly load: () => Promise<number>) {}

	/** Whether `growth` more bytes fit under `quotaBytes`. */
	async check(growth: number, quotaBytes: number): Promise<Result<void>> {
		if (growth <= 0) return ok(undefined);
		this.#used ??= await this.load();
		if (this.#used + growth > quotaBytes) return quotaExceeded(growth, this.#used, quotaBytes);
		return ok(undefined);
	}

	/** Counts a change that landed. */
	add(delta: number): void {
		if (this.#used !== null) this.#used += delta;
	}

	/** Forgets the total, after a write that may or may not have landed. */
	reset(): void {
		this.#used = null;
	}
}
