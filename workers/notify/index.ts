/**
 * The notify worker hosts the UserHub Durable Objects. The api worker reaches
 * them over native RPC through its USER_HUB binding (script_name); the worker
 * itself serves nothing.
 */
export { UserHub } from "./user-hub";

export default {
	async fetch(): Promise<Response> {
		return Response.json({ error: { code: "NOT_FOUND", message: "not found", request_id: "none" } }, { status: 404 });
	},
} satisfies ExportedHandler<Env>;
