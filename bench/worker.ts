/**
 * The api worker as the bench runs it: the production app plus the baseline
 * routes under /_bench (bench/routes.ts). Importing workers/api/index.ts
 * runs its startup (the WebAssembly gear loop) and gives its other handlers,
 * so only `fetch` differs from production (its routes, not its env). bench/lib/stack.mjs points a copy
 * of wrangler.toml at this file.
 */
import api from "../workers/api/index";
import type { GcUnit } from "../workers/api/services/gc-queue";
import { withDrills } from "../src/shared/drills";
import { buildApp } from "../workers/api/app";
import { withD1Timing } from "./d1-timing";
import { benchRoutes } from "./routes";

const app = buildApp();
app.route("/_bench", benchRoutes);

// As production's fetch does (drills when DRILLS is on), with every D1 binding timed for /_bench/d1-times.
const fetch = (request: Request, env: Env, ctx: ExecutionContext) => app.fetch(request, withDrills(withD1Timing(env)), ctx);

export default { ...api, fetch } satisfies ExportedHandler<Env, GcUnit>;

// The service binding BLOCK_SEGMENTS (wrangler.toml) names this entrypoint of the api worker.
export { BlockSegments } from "../workers/api/segments";
