// Statistics for the bench's figures.

/** The median of a non-empty list of numbers. */
export function median(values) {
	const sorted = [...values].sort((a, b) => a - b);
	const mid = sorted.length >> 1;
	return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * The nearest-rank quantile of an ascending list (NaN when empty).
 * @param {number[]} sorted
 * @param {number} q in [0, 1]
 */
export function quantile(sorted, q) {
	if (sorted.length === 0) return NaN;
	const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
	return sorted[i];
}

/** Count, p50, p99, min and max of a list of numbers. */
export function summarize(values) {
	const sorted = [...values].sort((a, b) => a - b);
	return { n: sorted.length, p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), min: sorted[0] ?? NaN, max: sorted.at(-1) ?? NaN };
}

/**
 * Each round's ratio of two measurements taken one after the other, and
 * their median: a round where the machine slowed down moves both sides of
 * its ratio, so drift does not decide the verdict (bench/README.md,
 * "Paired ratios").
 * @template T
 * @param {T[]} rounds
 * @param {(round: T) => number} numerator
 * @param {(round: T) => number} denominator
 */
export function pairedRatio(rounds, numerator, denominator) {
	const each = rounds.map((r) => numerator(r) / denominator(r));
	return { each, median: median(each) };
}
