// The chunker section: FastCDC in Node and workerd beside SHA-256.
import { mbs, measuredLine, pct, verdictTable, verdictsOf } from "./format.mjs";

/** Targets from the issue. */
const TARGETS = { nodeChunkerMBs: 500, workerdChunkerMBs: 1000 };

/** The chunker section from its figures (scenarios/chunker.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const { node, workerd, mib } = f;
	const rows = [
		{
			figure: `Chunker, Node (FastCDC, ${mib} MiB in one buffer)`,
			drive: mbs(node.chunker_mb_s),
			baseline: `SHA-256 (node:crypto) ${mbs(node.sha256_mb_s)}`,
			ratio: pct(node.chunker_mb_s / node.sha256_mb_s),
			target: `≥ ${mbs(TARGETS.nodeChunkerMBs)}`,
			ok: node.chunker_mb_s >= TARGETS.nodeChunkerMBs,
		},
		{
			figure: `Chunker, workerd (FastCDC, ${mib} MiB in one buffer)`,
			drive: mbs(workerd.chunker_mb_s),
			baseline: `SHA-256 (crypto.subtle) ${mbs(workerd.sha256_mb_s)}`,
			ratio: pct(workerd.chunker_mb_s / workerd.sha256_mb_s),
			target: `≥ ${mbs(TARGETS.workerdChunkerMBs)}`,
			ok: workerd.chunker_mb_s >= TARGETS.workerdChunkerMBs,
		},
		{
			figure: `Chunker, workerd, as the upload paths run it (streaming, 1 MiB pieces, ${workerd.streaming_loop === "wasm" ? "WebAssembly" : "JavaScript"} gear loop)`,
			drive: mbs(workerd.streaming_mb_s),
			baseline: `SHA-256 (crypto.subtle) ${mbs(workerd.sha256_mb_s)}`,
			ratio: pct(workerd.streaming_mb_s / workerd.sha256_mb_s),
			target: `≥ ${mbs(TARGETS.workerdChunkerMBs)}`,
			ok: workerd.streaming_mb_s >= TARGETS.workerdChunkerMBs && workerd.streaming_chunks === workerd.chunks,
		},
	];
	const markdown = `## Chunker

${measuredLine(meta)}

${verdictTable(rows)}

In Node: \`chunkBoundaries\` from an esbuild bundle of src/shared/chunking.ts, best of 3 over ${mib} MiB of pseudo-random bytes (${node.chunks} chunks); SHA-256 of the same bytes with node:crypto. In workerd: \`GET /_bench/chunker?mib=${mib}\`, best of 3 (${workerd.chunks} chunks), SHA-256 with crypto.subtle. The whole-buffer rows scan one buffer with the JavaScript loop. The streaming row runs \`Chunker.views\` over the same bytes in 1 MiB pieces with the gear loop the api worker installed (WebAssembly, docs/decisions/0012), copying each piece into its memory, as \`PUT\` content and tus do; it is marked met only if it also found the same ${workerd.chunks} chunks.
`;
	return { markdown, verdicts: verdictsOf("chunker", rows) };
}
