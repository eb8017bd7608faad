/** The api worker: auth, the files API, upload sessions and downloads. */
import { useWasmScanner } from "../../src/shared/chunking";
import gearScan from "../../src/shared/gear-scan.wasm";
import { withDrills } from "../../src/shared/drills";
import { buildApp } from "./app";
import { runHousekeeping } from "./scheduled";
import { consumeGcBatch, type GcUnit } from "./services/gc-queue";
import { consumeDeadLetters, consumeDeliveries } from "./services/webhook-delivery";
import { consumeFanOut, type DeliveryMessage } from "./services/webhook-fanout";
import type { FanOutKick } from "../notify/contract";

export { BlockSegments } from "./segments";

// The chunker's gear loop as WebAssembly: in workerd the JavaScript loop is
// fast only if V8's optimizing compile of it lands, which sometimes never
// happens (docs/decisions/0012). Workers cannot compile WebAssembly from
// bytes, so the module comes in as an import.
useWasmScanner(gearScan);

const app = buildApp();

export default {
	// withDrills hands back env itself unless DRILLS is "on" (src/shared/drills.ts).
	fetch: (request: Request, env: Env, ctx: ExecutionContext) => app.fetch(request, withDrills(env), ctx),
	async scheduled(_controller, env, ctx) {
		ctx.waitUntil(runHousekeeping(withDrills(env)));
	},
	/** One consumer for every queue of wrangler.toml, told apart by the queue's name. */
	async queue(batch, rawEnv) {
		const env = withDrills(rawEnv);
		switch (batch.queue) {
			case "drive-webhook-fanout":
				return consumeFanOut(batch as MessageBatch<FanOutKick>, env);
			case "drive-webhook-deliver":
				return consumeDeliveries(batch as MessageBatch<DeliveryMessage>, env);
			case "drive-webhook-dlq":
				return consumeDeadLetters(batch as MessageBatch<DeliveryMessage | FanOutKick>, env);
			default:
				return consumeGcBatch(batch as MessageBatch<GcUnit>, env);
		}
	},
} satisfies ExportedHandler<Env, GcUnit | FanOutKick | DeliveryMessage>;
