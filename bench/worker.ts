/**
 * The api worker as the bench runs it: the production app plus the baseline
 * routes under /_bench (bench/routes.ts). Importing workers/api/index.ts
 * runs its startup (the WebAssembly gear loop) and gives its other handlers,
 * so only `fetch` differs from production. bench/lib/stack.mjs points a copy
 * of wrangler.toml at this file.
 */
import api from "../workers/api/index";
import type { GcUnit } from "../workers/api/services/gc-queue";
import { buildApp } from "../workers/api/app";
import { benchRoutes } from "./routes";

const app = buildApp();
app.route("/_bench", benchRoutes);

export default { ...api, fetch: app.fetch } satisfies ExportedHandler<Env, GcUnit>;
