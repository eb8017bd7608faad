/** Webhook endpoints and their delivery log (docs/api.md, "Webhooks"). */
import { z } from "@hono/zod-openapi";
import { Timestamp } from "./common";
import { WEBHOOK_EVENT_FILTERS } from "../webhooks/events";

export const WebhookId = z.string().min(1).max(64).openapi({ example: "whk_01jd8x4k2m3n4p5q6r7s8t9v0w" });
export const DeliveryId = z.string().min(1).max(80).openapi({ example: "msg_01jd8x4k2m3n4p5q6r7s8t9v0w_1842" });

const EventFilter = z.enum(WEBHOOK_EVENT_FILTERS as [string, ...string[]]);

const Url = z.string().min(1).max(2048).openapi({
	example: "https://hooks.example.com/drive",
	description: "https, to a public address; redirects are never followed",
});
const EventTypes = z
	.array(EventFilter)
	.min(1)
	.max(32)
	.openapi({ description: "Event types to receive, or a family such as `file.*`; leave out for every event", example: ["file.*"] });
const Description = z.string().max(500);

export const WebhookEndpoint = z
	.object({
		id: WebhookId,
		url: z.string(),
		description: z.string(),
		event_types: z.array(z.string()).nullable().openapi({ description: "null: every event" }),
		status: z.enum(["enabled", "disabled"]),
		disabled_reason: z.enum(["gone", "failing", "user"]).nullable().openapi({
			description:
				"gone: the endpoint answered 410; failing: every delivery failed for 5 days (a `webhook.endpoint_disabled` event went to your other endpoints); user: you disabled it",
		}),
		disabled_at: Timestamp.nullable(),
		failing_since: Timestamp.nullable().openapi({ description: "When the current run of failed attempts began; null after a success" }),
		last_success_at: Timestamp.nullable(),
		previous_secret_expires_at: Timestamp.nullable().openapi({ description: "After a rotation: until then the previous secret signs too" }),
		created_at: Timestamp,
		updated_at: Timestamp,
		secret: z.string().optional().openapi({
			description: "Only in the answers that create the endpoint or rotate its secret: `whsec_` and base64",
			example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
		}),
	})
	.openapi("WebhookEndpoint");
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

export const WebhookEndpointList = z.object({ items: z.array(WebhookEndpoint) }).openapi("WebhookEndpointList");

export const CreateWebhookBody = z
	.object({ url: Url, event_types: EventTypes.optional(), description: Description.default("") })
	.strict()
	.openapi("CreateWebhookBody");

export const UpdateWebhookBody = z
	.object({
		url: Url.optional(),
		event_types: EventTypes.nullable().optional().openapi({ description: "null: every event" }),
		description: Description.optional(),
		status: z.enum(["enabled", "disabled"]).optional().openapi({
			description:
				"enabled re-enables a disabled endpoint (its failure state is reset, and events from while it was off follow); disabled stops deliveries",
		}),
	})
	.strict()
	.refine((b) => Object.values(b).some((v) => v !== undefined), "give url, event_types, description or status")
	.openapi("UpdateWebhookBody");

export const WebhookAttempt = z
	.object({
		n: z.number().int(),
		at: Timestamp,
		status: z
			.number()
			.int()
			.nullable()
			.openapi({ description: "The HTTP status; null when no answer came (timeout, refused connection, blocked address)" }),
		error: z.string().nullable(),
		duration_ms: z.number().int(),
		response: z.string().nullable().openapi({ description: "The first 1 KB of the answer" }),
	})
	.openapi("WebhookAttempt");

export const WebhookDelivery = z
	.object({
		id: DeliveryId.openapi({ description: "The `webhook-id` header: the same on every attempt and redelivery" }),
		endpoint_id: WebhookId,
		type: z.string(),
		seq: z.number().int().nullable().openapi({ description: "The journal change it carries; null for webhook.* events" }),
		status: z.enum(["pending", "succeeded", "failed"]),
		attempts: z.number().int(),
		next_attempt_at: Timestamp.nullable().openapi({ description: "While pending: when the next attempt is due" }),
		last_status: z.number().int().nullable(),
		last_error: z.string().nullable(),
		created_at: Timestamp,
		updated_at: Timestamp,
		attempt_log: z.array(WebhookAttempt).optional().openapi({ description: "Only in GET /v1/webhooks/{id}/deliveries/{delivery_id}" }),
	})
	.openapi("WebhookDelivery");
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryPage = z
	.object({ items: z.array(WebhookDelivery), next_cursor: z.string().nullable() })
	.openapi("WebhookDeliveryPage");

export const DeliveryListQuery = z.object({
	status: z.enum(["pending", "succeeded", "failed"]).optional(),
	limit: z.coerce.number().int().min(1).max(200).default(50),
	cursor: z.string().max(512).optional(),
});

export const RecoverBody = z
	.object({
		since_seq: z.number().int().min(0).optional().openapi({ description: "Failed deliveries of changes after this journal seq" }),
		since: z
			.string()
			.datetime({ offset: true, message: "must be an ISO-8601 date and time" })
			.optional()
			.openapi({ description: "Failed deliveries created at or after this time" }),
	})
	.strict()
	.refine((b) => (b.since_seq === undefined) !== (b.since === undefined), "give exactly one of since_seq and since")
	.openapi("RecoverWebhookBody");

export const RecoverResult = z.object({ redelivering: z.number().int() }).openapi("RecoverWebhookResult");
