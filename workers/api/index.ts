/** The api worker: auth, the files API, upload sessions and downloads. */
import { useWasmScanner } from "../../src/shared/chunking";
import gearScan from "../../src/shared/gear-scan.wasm";
import { buildApp } from "./app";
import { runHousekeeping } from "./scheduled";
import { consumeGcBatch, type GcUnit } from "./services/gc-queue";

// The chunker's gear loop as WebAssembly: in workerd the JavaScript loop is
// fast only if V8's optimizing compile of it lands, which sometimes never
// happens (docs/decisions/0012). Workers cannot compile WebAssembly from
// bytes, so the module comes in as an import.
useWasmScanner(gearScan);

const app = buildApp();

export default {
	fetch: app.fetch,
	async scheduled(_controller, env, ctx) {
		ctx.waitUntil(runHousekeeping(env));
	},
	async queue(batch, env) {
		await consumeGcBatch(batch, env);
	},
} satisfies ExportedHandler<Env, GcUnit>;
