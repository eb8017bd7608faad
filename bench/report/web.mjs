// The web section: bytes a first load ships and the time to a listed 1,000-file folder in Chromium.
import { measuredLine, verdictTable, verdictsOf } from "./format.mjs";

/** Targets from issue 14. */
const TARGETS = { jsBytes: 150_000, listMs: 1000 };

const kb = (bytes) => `${(bytes / 1000).toFixed(1)} KB`;
const ms = (value) => `${Math.round(value)} ms`;

/** The web section from its figures (scenarios/web.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const { js, css } = f.shipped;
	const rows = [
		{
			figure: "First load: JavaScript, gzip",
			drive: kb(js.gzip),
			baseline: `${kb(js.raw)} minified`,
			ratio: `${((100 * js.gzip) / js.raw).toFixed(0)} %`,
			target: `≤ ${kb(TARGETS.jsBytes)}`,
			ok: js.gzip <= TARGETS.jsBytes,
		},
		{
			figure: "First load: JavaScript, brotli",
			drive: kb(js.brotli),
			baseline: `${kb(js.raw)} minified`,
			ratio: `${((100 * js.brotli) / js.raw).toFixed(0)} %`,
			target: `≤ ${kb(TARGETS.jsBytes)}`,
			ok: js.brotli <= TARGETS.jsBytes,
		},
		{
			figure: "First load: CSS, gzip / brotli",
			drive: `${kb(css.gzip)} / ${kb(css.brotli)}`,
			baseline: `${kb(css.raw)} minified`,
			ratio: "",
			target: "",
			ok: null,
		},
		{
			figure: `Navigation to a listed ${f.files.toLocaleString("en")}-file folder, Chromium, median of ${f.loads}`,
			drive: ms(f.list_ms.median),
			baseline: `API listing alone ${ms(f.api_ms.median)}`,
			ratio: `${(f.list_ms.median / f.api_ms.median).toFixed(1)}×`,
			target: `≤ ${ms(TARGETS.listMs)}`,
			ok: f.list_ms.median <= TARGETS.listMs,
		},
	];
	const markdown = `## Web app

${measuredLine(meta)}

${verdictTable(rows)}

Bytes: the hashed \`assets/main-*.js\` and \`.css\` that \`scripts/build-web.mjs\` writes (index.html and the favicon are a few hundred bytes more), compressed here with gzip level 9 and brotli quality 11; Cloudflare compresses at the edge with its own settings. Time: for each of ${f.loads} fresh Chromium profiles (no cached bundle; a cookie session from \`POST /v1/auth/web/login\`), \`page.goto("/f/<folder>")\` until the grid's first row is laid out and its \`aria-rowcount\` counts all ${f.files.toLocaleString("en")} files, read as \`performance.now()\` in the page (milliseconds since the navigation started): ${f.list_ms.all.map((v) => Math.round(v)).join(", ")} ms. The baseline is \`GET /v1/nodes/:id/children?limit=1000\` from Node on the same stack: ${f.api_ms.all.map((v) => Math.round(v)).join(", ")} ms. The run fails when gzipped JavaScript exceeds ${kb(f.js_budget)}.
`;
	return { markdown, verdicts: verdictsOf("web", rows) };
}
