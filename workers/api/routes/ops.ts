/**
 * Operator routes (docs/operations.md, "Moving a user to another shard").
 * They answer 404, like any unknown path, unless the OPS_SECRET secret is
 * set, and 401 without it as a bearer token. Not part of the API, so not in
 * the OpenAPI document.
 */
import { Hono, type Context } from "hono";
import { z } from "zod";
import { ApiError, unwrap } from "../errors";
import type { AppEnv } from "../env";
import { hubFor } from "../services/hub";
import { forgetUser } from "../services/sessions";

const MoveRequest = z.object({ to: z.number().int().min(0) }).strict();

export const opsRoutes = new Hono<AppEnv>()
	.post("/__ops/users/:id/move", async (c) => {
		const userId = await operatorTarget(c);
		const parsed = MoveRequest.safeParse(await c.req.json().catch(() => null));
		if (!parsed.success) throw new ApiError("INVALID_REQUEST", 'send {"to": <shard index>}');
		const moved = unwrap(await hubFor(c.env, userId).moveToShard({ to: parsed.data.to }));
		// This isolate at once; others when their caches expire or the old shard's fence refuses them.
		forgetUser(userId);
		return c.json(moved, 200);
	})
	.delete("/__ops/users/:id/move", async (c) => {
		const userId = await operatorTarget(c);
		return c.json(unwrap(await hubFor(c.env, userId).abandonMove()), 200);
	})
	.get("/__ops/users/:id/move", async (c) => {
		const userId = await operatorTarget(c);
		return c.json(await hubFor(c.env, userId).moveStatus(), 200);
	});

/** The user the operator names, once the operator is known; throws the route's refusals. */
async function operatorTarget(c: Context<AppEnv>): Promise<string> {
	const secret = (c.env as { OPS_SECRET?: string }).OPS_SECRET;
	if (!secret) throw new ApiError("NOT_FOUND", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`);
	const given = /^Bearer (.+)$/.exec(c.req.header("Authorization") ?? "")?.[1] ?? "";
	if (!(await sameSecret(given, secret))) throw new ApiError("UNAUTHENTICATED", "send the operator secret as a bearer token");
	const userId = c.req.param("id") ?? "";
	const row = await c.env.DIRECTORY.prepare("SELECT id FROM users WHERE id = ?1").bind(userId).first<{ id: string }>();
	if (!row) throw new ApiError("NOT_FOUND", "no such user");
	return row.id;
}

/** Compares digests in constant time, so the comparison says nothing about the secret. */
async function sameSecret(given: string, secret: string): Promise<boolean> {
	const digest = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
	const [a, b] = await Promise.all([digest(given), digest(secret)]);
	return crypto.subtle.timingSafeEqual(a, b);
}
