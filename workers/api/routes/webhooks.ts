/** Webhook endpoints and their delivery log, an extension (docs/api.md, "Webhooks"; docs/decisions/0028-webhooks.md). */
import { z } from "@hono/zod-openapi";
import {
	CreateWebhookBody,
	DeliveryListQuery,
	RecoverBody,
	RecoverResult,
	UpdateWebhookBody,
	WebhookDelivery,
	WebhookDeliveryPage,
	WebhookEndpoint,
	WebhookEndpointList,
} from "../../../src/shared/schemas/webhooks";
import { unwrap } from "../errors";
import { errorResponses, json, jsonBody, newRouter, protectedRoute } from "../openapi";
import {
	createEndpoint,
	deleteEndpoint,
	listEndpoints,
	ownEndpoint,
	rotateSecret,
	toWebhookEndpoint,
	updateEndpoint,
} from "../services/webhook-endpoints";
import { getDelivery, listDeliveries, recover, redeliver, sendTestEvent } from "../services/webhook-log";
import { shardFor } from "../services/hub";

export const webhookRoutes = newRouter();

const tags = ["Webhooks"];
const EXTENSION = 'Extension of the v1 contract (docs/api.md, "Webhooks").';
const IdParam = z.object({ id: z.string().min(1).max(64) });
const DeliveryParams = IdParam.extend({ delivery_id: z.string().min(1).max(80) });
const NOT_YOURS = "Another user's endpoint and an unknown id answer the same 404.";

webhookRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/webhooks",
		tags,
		summary: "Register a webhook endpoint (extension)",
		description: `${EXTENSION} The answer is the only time the signing \`secret\` is shown. Every event is POSTed as JSON \`{type, timestamp, data}\`, signed per Standard Webhooks (\`webhook-id\`, \`webhook-timestamp\`, \`webhook-signature\`), with the change's journal \`seq\` and \`cursor\` in \`data\`. Events start with the next change. The URL must be https to a public address (no loopback, private, link-local or CGNAT address, in any spelling); it is checked again before every attempt, and redirects are never followed. At most 10 endpoints per account.`,
		request: { body: jsonBody(CreateWebhookBody) },
		responses: { 201: json(WebhookEndpoint, "The endpoint, with its secret"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED") },
	}),
	async (c) => c.json(unwrap(await createEndpoint(c.env, c.get("caller"), c.req.valid("json"))), 201),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/webhooks",
		tags,
		summary: "The caller's webhook endpoints, oldest first (extension)",
		description: `${EXTENSION} Secrets are never shown again. A disabled endpoint says why in \`disabled_reason\`.`,
		responses: { 200: json(WebhookEndpointList, "Every endpoint"), ...errorResponses("UNAUTHENTICATED") },
	}),
	async (c) => c.json({ items: await listEndpoints(c.env, c.get("caller")) }, 200),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/webhooks/{id}",
		tags,
		summary: "One webhook endpoint (extension)",
		description: `${EXTENSION} ${NOT_YOURS}`,
		request: { params: IdParam },
		responses: { 200: json(WebhookEndpoint, "The endpoint"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const caller = c.get("caller");
		return c.json(toWebhookEndpoint(unwrap(await ownEndpoint(shardFor(c.env, caller), caller.userId, c.req.valid("param").id))), 200);
	},
);

webhookRoutes.openapi(
	protectedRoute({
		method: "patch",
		path: "/webhooks/{id}",
		tags,
		summary: "Change an endpoint's URL, events or description, or disable or re-enable it (extension)",
		description: `${EXTENSION} \`status: "enabled"\` re-enables a disabled endpoint: its failure state is reset, and the events of the changes made while it was off follow (as far as the journal keeps them, 30 days). ${NOT_YOURS}`,
		request: { params: IdParam, body: jsonBody(UpdateWebhookBody) },
		responses: {
			200: json(WebhookEndpoint, "The endpoint as changed"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
	async (c) => c.json(unwrap(await updateEndpoint(c.env, c.get("caller"), c.req.valid("param").id, c.req.valid("json"))), 200),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "delete",
		path: "/webhooks/{id}",
		tags,
		summary: "Delete an endpoint and its delivery log (extension)",
		description: `${EXTENSION} Deliveries on their way stop. ${NOT_YOURS}`,
		request: { params: IdParam },
		responses: { 204: { description: "Deleted" }, ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		unwrap(await deleteEndpoint(c.env, c.get("caller"), c.req.valid("param").id));
		return c.body(null, 204);
	},
);

webhookRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/webhooks/{id}/rotate-secret",
		tags,
		summary: "Replace an endpoint's signing secret (extension)",
		description: `${EXTENSION} The answer shows the new secret, once. For 24 hours every delivery carries two signatures, one per secret (\`previous_secret_expires_at\`), so a receiver can switch without refusing anything. ${NOT_YOURS}`,
		request: { params: IdParam },
		responses: {
			200: json(WebhookEndpoint, "The endpoint, with its new secret"),
			...errorResponses("UNAUTHENTICATED", "NOT_FOUND", "VERSION_CONFLICT"),
		},
	}),
	async (c) => c.json(unwrap(await rotateSecret(c.env, c.get("caller"), c.req.valid("param").id)), 200),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/webhooks/{id}/test",
		tags,
		summary: "Send a webhook.test event to an endpoint (extension)",
		description: `${EXTENSION} Sent whatever the endpoint's event filter, and retried like any delivery; follow it in the delivery log. A disabled endpoint answers 400. ${NOT_YOURS}`,
		request: { params: IdParam },
		responses: {
			202: json(WebhookDelivery, "The delivery, on its way"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
	async (c) => c.json(unwrap(await sendTestEvent(c.env, c.get("caller"), c.req.valid("param").id)), 202),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/webhooks/{id}/deliveries",
		tags,
		summary: "An endpoint's delivery log, newest first (extension)",
		description: `${EXTENSION} Deliveries are kept as long as the journal (30 days). \`status\` filters. ${NOT_YOURS}`,
		request: { params: IdParam, query: DeliveryListQuery },
		responses: { 200: json(WebhookDeliveryPage, "One page"), ...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => c.json(unwrap(await listDeliveries(c.env, c.get("caller"), c.req.valid("param").id, c.req.valid("query"))), 200),
);

webhookRoutes.openapi(
	protectedRoute({
		method: "get",
		path: "/webhooks/{id}/deliveries/{delivery_id}",
		tags,
		summary: "One delivery with every attempt (extension)",
		description: `${EXTENSION} Each attempt: its time, HTTP status (null when no answer came), error, duration and the first 1 KB of the answer. ${NOT_YOURS}`,
		request: { params: DeliveryParams },
		responses: { 200: json(WebhookDelivery, "The delivery"), ...errorResponses("UNAUTHENTICATED", "NOT_FOUND") },
	}),
	async (c) => {
		const { id, delivery_id } = c.req.valid("param");
		return c.json(unwrap(await getDelivery(c.env, c.get("caller"), id, delivery_id)), 200);
	},
);

webhookRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
		tags,
		summary: "Send one delivery again (extension)",
		description: `${EXTENSION} Same \`webhook-id\` and body, a fresh timestamp and signature, and a fresh retry schedule; its attempts go on in the same log. A disabled endpoint answers 400. ${NOT_YOURS}`,
		request: { params: DeliveryParams },
		responses: {
			202: json(WebhookDelivery, "The delivery, pending again"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
	async (c) => {
		const { id, delivery_id } = c.req.valid("param");
		return c.json(unwrap(await redeliver(c.env, c.get("caller"), id, delivery_id)), 202);
	},
);

webhookRoutes.openapi(
	protectedRoute({
		method: "post",
		path: "/webhooks/{id}/recover",
		tags,
		summary: "Send every failed delivery since a seq or a time again (extension)",
		description: `${EXTENSION} Give \`since_seq\` (deliveries of journal changes after it) or \`since\` (created at or after it); up to 1,000 deliveries, oldest first. ${NOT_YOURS}`,
		request: { params: IdParam, body: jsonBody(RecoverBody) },
		responses: {
			202: json(RecoverResult, "How many are on their way"),
			...errorResponses("INVALID_REQUEST", "UNAUTHENTICATED", "NOT_FOUND"),
		},
	}),
	async (c) => c.json(unwrap(await recover(c.env, c.get("caller"), c.req.valid("param").id, c.req.valid("json"))), 202),
);
