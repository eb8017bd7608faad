/**
 * The notify worker hosts the UserHub Durable Objects. The api worker reaches
 * them over native RPC through its USER_HUB binding (script_name); the worker
 * itself serves nothing.
 */
import { fail, failureResponse } from "../../src/shared/errors";

export { UserHub } from "./user-hub";

export default {
	async fetch(): Promise<Response> {
		return failureResponse(fail("NOT_FOUND", "the notify worker serves no routes").error, "none");
	},
} satisfies ExportedHandler<Env>;
