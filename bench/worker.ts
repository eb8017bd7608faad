/**
 * The api worker as the bench runs it: the production app plus the baseline
 * routes under /_bench (bench/routes.ts). Importing workers/api/index.ts
 * runs its startup (the WebAssembly gear loop) and gives its other handlers,
 * so only `fetch` differs from production (its routes, not its env). bench/lib/stack.mjs points a copy
 * of wrangler.toml at this file.
 */
import api from "../workers/api/index";
import type { GcUnit } from "../workers/api/services/gc-queue";
import { buildApp } from "../workers/api/app";
import { withDrills } from "../src/shared/drills";
import { benchRoutes } from "./routes";

const app = buildApp();
app.route("/_bench", benchRoutes);

// Wrapped as production's fetch is: withDrills hands back env itself unless DRILLS is "on".
export default {
	...api,
	fetch: (request: Request, env: Env, ctx: ExecutionContext) => app.fetch(request, withDrills(env), ctx),
} satisfies ExportedHandler<Env, GcUnit>;
