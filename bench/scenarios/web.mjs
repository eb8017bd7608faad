// The web app: what a first load ships (the JS and CSS of web/dist, gzip and
// brotli), and how long Chromium takes from navigation to a 1,000-file
// folder listed (its first row on screen and the grid knowing all 1,000
// rows), median of 5 fresh browser profiles, beside the API's own answer for
// the same listing. Fails above 150 KB of compressed JavaScript (issue 14).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { brotliCompressSync, constants, gzipSync } from "node:zlib";
import { chromium } from "playwright-core";
import { expectStatus, PASSWORD, pool, signup } from "../lib/http.mjs";
import { median } from "../lib/stats.mjs";

const DEFAULTS = { files: 1000, loads: 5 };
/** Fewer loads: a check that the path runs, not figures. */
const QUICK = { files: 1000, loads: 2 };
/** The budget for compressed JavaScript, in bytes (KB = 1,000 bytes). */
export const JS_BUDGET = 150_000;

const CHROMIUM = [process.env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser"];

/** The bytes a first load fetches besides index.html: the bundle and the stylesheet, raw and compressed. */
function bytesShipped(dist) {
	const assets = join(dist, "assets");
	const sized = (ext) => {
		const raw = readdirSync(assets)
			.filter((f) => f.endsWith(ext))
			.map((f) => readFileSync(join(assets, f)));
		const total = (bufs) => bufs.reduce((n, b) => n + b.length, 0);
		return {
			raw: total(raw),
			gzip: total(raw.map((b) => gzipSync(b, { level: 9 }))),
			brotli: total(raw.map((b) => brotliCompressSync(b, { params: { [constants.BROTLI_PARAM_QUALITY]: 11 } }))),
		};
	};
	return { js: sized(".js"), css: sized(".css") };
}

/** @param {import("../lib/stack.mjs").Context} ctx */
export async function measure(ctx) {
	const opts = { ...DEFAULTS, ...(ctx.quick ? QUICK : {}) };
	const { buildWeb } = await import(pathToFileURL(join(ctx.tree, "scripts", "build-web.mjs")).href);
	await buildWeb(ctx.tree);
	const shipped = bytesShipped(join(ctx.tree, "web", "dist"));
	ctx.log(`web: JS ${shipped.js.raw} B raw, ${shipped.js.gzip} B gzip, ${shipped.js.brotli} B brotli; CSS ${shipped.css.gzip} B gzip`);

	const stack = await ctx.startStack();
	const executablePath = CHROMIUM.find((p) => p && existsSync(p));
	if (!executablePath) throw new Error("Chromium is not installed: apt-get install -y chromium, or set CHROMIUM_PATH");
	const browser = await chromium.launch({
		executablePath,
		headless: true,
		args: ["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
	});
	try {
		const user = await signup(stack.url, "web");
		const auth = { Authorization: `Bearer ${user.token}` };
		const folder = await fetch(`${stack.url}/v1/folders`, {
			method: "POST",
			headers: { ...auth, "Content-Type": "application/json" },
			body: JSON.stringify({ parent_id: user.rootId, name: "thousand" }),
		});
		await expectStatus(folder, "POST /v1/folders", 201);
		const folderId = (await folder.json()).id;
		ctx.log(`web: seeding ${opts.files} files`);
		await pool(opts.files, 8, async (i) => {
			const name = `file-${String(i).padStart(4, "0")}.txt`;
			const res = await fetch(`${stack.url}/v1/files/content?${new URLSearchParams({ parent_id: folderId, name })}`, {
				method: "PUT",
				headers: { ...auth, Authorization: `Bearer ${await user.freshToken()}` },
				body: `file ${i}`,
			});
			await expectStatus(res, "PUT /v1/files/content", 201);
		});

		// The API alone: the same listing the page asks for, from Node.
		const apiMs = [];
		for (let i = 0; i < opts.loads; i++) {
			const start = performance.now();
			const res = await fetch(`${stack.url}/v1/nodes/${folderId}/children?limit=1000`, { headers: auth });
			await expectStatus(res, "GET children", 200);
			const body = await res.json();
			apiMs.push(performance.now() - start);
			if (body.items.length !== opts.files) throw new Error(`listed ${body.items.length} files, expected ${opts.files}`);
		}

		const pageMs = [];
		for (let i = 0; i < opts.loads; i++) {
			// A fresh profile each time: no cached bundle, a session from the cookie as after a sign-in.
			const context = await browser.newContext({ baseURL: stack.url, viewport: { width: 1280, height: 800 } });
			const login = await context.request.post("/v1/auth/web/login", { data: { email: user.email, password: PASSWORD } });
			if (!login.ok()) throw new Error(`web login: ${login.status()} ${await login.text()}`);
			const page = await context.newPage();
			await page.goto(`/f/${folderId}`, { waitUntil: "commit" });
			// Milliseconds from the navigation's start (the page's time origin) to the listed folder.
			const handle = await page.waitForFunction(
				(rows) => {
					const doc = globalThis.document;
					const grid = doc.querySelector('[role="grid"]');
					const first = grid?.querySelector('[role="row"][aria-rowindex="2"]');
					if (grid?.getAttribute("aria-rowcount") !== String(rows + 1) || !first) return false;
					return first.getBoundingClientRect().height > 0 ? globalThis.performance.now() : false;
				},
				opts.files,
				{ timeout: 60_000, polling: "raf" },
			);
			pageMs.push(await handle.jsonValue());
			await context.close();
		}
		ctx.log(`web: listed in ${pageMs.map((ms) => ms.toFixed(0)).join(", ")} ms; API ${apiMs.map((ms) => ms.toFixed(0)).join(", ")} ms`);
		const figures = {
			files: opts.files,
			loads: opts.loads,
			shipped,
			js_budget: JS_BUDGET,
			list_ms: { median: median(pageMs), all: pageMs },
			api_ms: { median: median(apiMs), all: apiMs },
		};
		if (shipped.js.gzip > JS_BUDGET) {
			throw new Error(`the web app ships ${shipped.js.gzip} bytes of gzipped JavaScript, over the ${JS_BUDGET}-byte budget`);
		}
		return figures;
	} finally {
		await browser.close();
		await stack.stop();
	}
}
