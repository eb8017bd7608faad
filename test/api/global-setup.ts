/// <reference types="node" />
/**
 * vitest globalSetup for the "workers" project: a webhook receiver and a
 * connection trap on 127.0.0.1 (test/support/webhook-receiver.ts), which the
 * tests inside workerd reach over HTTP.
 */
import type { TestProject } from "vitest/node";
import { WebhookReceiver } from "../support/webhook-receiver";

declare module "vitest" {
	export interface ProvidedContext {
		/** Origin of the webhook receiver, e.g. http://127.0.0.1:40123. */
		webhookReceiver: string;
		/** Port of the trap that counts connections on 127.0.0.1. */
		webhookTrapPort: number;
	}
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
	const receiver = await new WebhookReceiver().start();
	project.provide("webhookReceiver", receiver.url);
	project.provide("webhookTrapPort", receiver.trapPort);
	return () => receiver.stop();
}
