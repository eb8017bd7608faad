/** The api worker: auth, the files API, upload sessions and downloads. */
import { buildApp } from "./app";
import { runHousekeeping } from "./scheduled";

const app = buildApp();

export default {
	fetch: app.fetch,
	async scheduled(_controller, env, ctx) {
		ctx.waitUntil(runHousekeeping(env));
	},
} satisfies ExportedHandler<Env>;
