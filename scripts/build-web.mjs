// Builds the web app into web/dist: one hashed script and stylesheet, the
// page that loads them, and the static files in web/public (with _headers,
// the security headers the asset router adds). Run by `npm run build:web`,
// by startStack (so `npm start`, the tests and the bench serve a fresh
// build) and by the deploy scripts. See docs/decisions/0026-web-app.md.
import { build } from "esbuild";
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const DEFAULT_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * Builds web/dist under `root`; returns the served file names and the
 * esbuild metafile (the bench reads the bytes shipped from it).
 * @param {string} [root]
 */
export async function buildWeb(root = DEFAULT_ROOT) {
	const web = join(root, "web");
	const out = join(web, "dist");
	rmSync(out, { recursive: true, force: true });
	mkdirSync(out, { recursive: true });
	const result = await build({
		absWorkingDir: root,
		entryPoints: { main: join(web, "src", "main.tsx") },
		bundle: true,
		format: "esm",
		platform: "browser",
		target: "es2022",
		jsx: "automatic",
		jsxImportSource: "preact",
		minify: true,
		sourcemap: "linked",
		// One bundle, no lazy chunks: a tab left open across a deploy could not
		// load a chunk whose hash is gone (the asset router answers index.html).
		splitting: false,
		outdir: join(out, "assets"),
		entryNames: "[name]-[hash]",
		metafile: true,
		legalComments: "none",
		logLevel: "warning",
	});
	const outputs = Object.keys(result.metafile.outputs).map((file) => basename(file));
	const script = outputs.find((f) => f.endsWith(".js"));
	const style = outputs.find((f) => f.endsWith(".css"));
	if (!script || !style) throw new Error(`web build produced ${outputs.join(", ")}, expected a .js and a .css`);
	cpSync(join(web, "public"), out, { recursive: true });
	const page = readFileSync(join(web, "index.html"), "utf8")
		.replace("%SCRIPT%", `/assets/${script}`)
		.replace("%STYLE%", `/assets/${style}`);
	writeFileSync(join(out, "index.html"), page);
	return { script, style, metafile: result.metafile };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
	const { script, style } = await buildWeb();
	console.log(`web/dist: ${script}, ${style}`);
}
