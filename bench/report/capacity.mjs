// The capacity section of BENCHMARKS.md: the measured inputs of the capacity
// model, and docs/capacity.md written from them (bench/capacity/model.mjs).
import { writeCapacityDoc } from "../capacity/model.mjs";

export function render(figures, meta) {
	const doc = writeCapacityDoc(figures, meta);
	return { markdown: doc.benchSection, verdicts: doc.verdicts };
}
