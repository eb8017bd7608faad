import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { isWebhookSecret, newWebhookSecret, signWebhook, verifyWebhook, WEBHOOK_SECRET_PREFIX, webhookHeaders } from "./signing";

// The libraries read the clock themselves: it is frozen at NOW so that "301 s off" stays 301 s off.
const NOW = 1_790_000_000;
const ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f1W";
const BODY = JSON.stringify({ type: "file.created", data: { id: "n_1", name: "Résumé ✓.pdf" } });

function secretOf(bytes: number, fill = 7): string {
	return WEBHOOK_SECRET_PREFIX + btoa(String.fromCharCode(...new Uint8Array(bytes).fill(fill)));
}

/** Whether each receiver library accepts the delivery (they throw on refusal). */
function librariesAccept(secret: string, headers: Record<string, string>, body: string): { standardwebhooks: boolean; svix: boolean } {
	const accepts = (verify: () => unknown) => {
		try {
			verify();
			return true;
		} catch {
			return false;
		}
	};
	return {
		standardwebhooks: accepts(() => new StandardWebhook(secret).verify(body, headers)),
		svix: accepts(() => new SvixWebhook(secret).verify(body, headers)),
	};
}

beforeEach(() => {
	vi.useFakeTimers({ toFake: ["Date"] });
	vi.setSystemTime(NOW * 1000);
});
afterEach(() => {
	vi.useRealTimers();
});

describe("secrets", () => {
	it("makes whsec_ secrets of 32 random bytes", () => {
		const a = newWebhookSecret();
		const b = newWebhookSecret();
		expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
		expect(atob(a.slice(WEBHOOK_SECRET_PREFIX.length))).toHaveLength(32);
		expect(a).not.toBe(b);
		expect(isWebhookSecret(a)).toBe(true);
	});

	const cases: [label: string, secret: string, want: boolean][] = [
		["24 bytes", secretOf(24), true],
		["64 bytes", secretOf(64), true],
		["23 bytes", secretOf(23), false],
		["65 bytes", secretOf(65), false],
		["no prefix", secretOf(32).slice(WEBHOOK_SECRET_PREFIX.length), false],
		["another prefix", "whsek_" + secretOf(32).slice(WEBHOOK_SECRET_PREFIX.length), false],
		["missing padding", secretOf(32).replace(/=+$/, ""), false],
		["base64url characters", secretOf(32, 0xfb).replace(/\+/g, "-").replace(/\//g, "_"), false],
		["whitespace", secretOf(32).replace("whsec_", "whsec_ "), false],
		["empty", "", false],
		["prefix only", WEBHOOK_SECRET_PREFIX, false],
	];
	it.each(cases)("isWebhookSecret: %s → %s", (_label, secret, want) => {
		expect(isWebhookSecret(secret)).toBe(want);
	});
});

describe("signing", () => {
	it("signs exactly as the standardwebhooks library does", async () => {
		const secret = newWebhookSecret();
		const ours = await signWebhook([secret], ID, NOW, BODY);
		expect(ours).toMatch(/^v1,[A-Za-z0-9+/]{43}=$/);
		expect(ours).toBe(new StandardWebhook(secret).sign(ID, new Date(NOW * 1000), BODY));
	});

	it("matches a fixed vector", async () => {
		// Key and message from the standardwebhooks libraries' own tests.
		const signature = await signWebhook(
			["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
			"msg_p5jXN8AQM9LWM0D4loKWxJek",
			1614265330,
			'{"test": 2432232314}',
		);
		expect(signature).toBe("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	});

	it("lists one entry per secret, in the given order", async () => {
		const [a, b] = [newWebhookSecret(), newWebhookSecret()];
		const both = await signWebhook([a, b], ID, NOW, BODY);
		expect(both).toBe(`${await signWebhook([a], ID, NOW, BODY)} ${await signWebhook([b], ID, NOW, BODY)}`);
	});

	it("puts the id, the timestamp in seconds and the signature in the headers", async () => {
		const secret = newWebhookSecret();
		expect(await webhookHeaders([secret], ID, NOW, BODY)).toEqual({
			"webhook-id": ID,
			"webhook-timestamp": String(NOW),
			"webhook-signature": await signWebhook([secret], ID, NOW, BODY),
		});
	});

	it("refuses what only a bug could pass", async () => {
		const secret = newWebhookSecret();
		await expect(signWebhook([], ID, NOW, BODY)).rejects.toThrow(/no secret/);
		await expect(signWebhook([secret, "whsec_short"], ID, NOW, BODY)).rejects.toThrow(/not a webhook secret/);
		await expect(signWebhook([secret], "msg.1", NOW, BODY)).rejects.toThrow(/message id/);
		await expect(signWebhook([secret], "", NOW, BODY)).rejects.toThrow(/message id/);
		await expect(signWebhook([secret], ID, NOW + 0.5, BODY)).rejects.toThrow(/timestamp/);
		await expect(signWebhook([secret], ID, -1, BODY)).rejects.toThrow(/timestamp/);
	});
});

describe("receivers", () => {
	it("accepts our delivery with standardwebhooks, svix and verifyWebhook", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		expect(librariesAccept(secret, headers, BODY)).toEqual({ standardwebhooks: true, svix: true });
		expect(await verifyWebhook(secret, headers, BODY)).toBe(true);
		expect(await verifyWebhook(secret, new Headers(headers), BODY)).toBe(true);
	});

	it("refuses a body with one byte changed", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		const changed = BODY.replace("n_1", "n_2");
		expect(changed).toHaveLength(BODY.length);
		expect(librariesAccept(secret, headers, changed)).toEqual({ standardwebhooks: false, svix: false });
		expect(await verifyWebhook(secret, headers, changed)).toBe(false);
	});

	it.each([
		["past", -301],
		["future", 301],
	])("refuses a timestamp 301 s in the %s and accepts one 300 s there", async (_when, offset) => {
		const secret = newWebhookSecret();
		const stale = await webhookHeaders([secret], ID, NOW + offset, BODY);
		expect(librariesAccept(secret, stale, BODY)).toEqual({ standardwebhooks: false, svix: false });
		expect(await verifyWebhook(secret, stale, BODY)).toBe(false);
		const edge = await webhookHeaders([secret], ID, NOW + Math.sign(offset) * 300, BODY);
		expect(librariesAccept(secret, edge, BODY)).toEqual({ standardwebhooks: true, svix: true });
		expect(await verifyWebhook(secret, edge, BODY)).toBe(true);
	});

	it("verifies a rotation header with either secret, and with no other", async () => {
		const [next, previous, stranger] = [newWebhookSecret(), newWebhookSecret(), newWebhookSecret()];
		const headers = await webhookHeaders([next, previous], ID, NOW, BODY);
		expect(headers["webhook-signature"].split(" ")).toHaveLength(2);
		for (const secret of [next, previous]) {
			expect(librariesAccept(secret, headers, BODY)).toEqual({ standardwebhooks: true, svix: true });
			expect(await verifyWebhook(secret, headers, BODY)).toBe(true);
		}
		expect(librariesAccept(stranger, headers, BODY)).toEqual({ standardwebhooks: false, svix: false });
		expect(await verifyWebhook(stranger, headers, BODY)).toBe(false);
	});

	it("refuses a delivery signed for another id or timestamp", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		expect(await verifyWebhook(secret, { ...headers, "webhook-id": "msg_other" }, BODY)).toBe(false);
		expect(await verifyWebhook(secret, { ...headers, "webhook-timestamp": String(NOW + 1) }, BODY)).toBe(false);
	});

	it("reads header names in any case", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		const shouted = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toUpperCase(), v]));
		expect(await verifyWebhook(secret, shouted, BODY)).toBe(true);
	});

	it("ignores entries of other versions and malformed ones", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		const v1 = headers["webhook-signature"];
		const sig = v1.slice("v1,".length);
		const withOthers = { ...headers, "webhook-signature": `v1a,${sig} garbage v1,%%% ${v1}` };
		expect(await verifyWebhook(secret, withOthers, BODY)).toBe(true);
		expect(await verifyWebhook(secret, { ...headers, "webhook-signature": `v2,${sig}` }, BODY)).toBe(false);
		expect(await verifyWebhook(secret, { ...headers, "webhook-signature": sig }, BODY)).toBe(false);
		expect(await verifyWebhook(secret, { ...headers, "webhook-signature": "" }, BODY)).toBe(false);
	});

	it("refuses missing and malformed headers", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, NOW, BODY);
		for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"] as const) {
			const { [name]: _dropped, ...rest } = headers;
			expect(await verifyWebhook(secret, rest, BODY)).toBe(false);
		}
		for (const timestamp of ["", "abc", `${NOW}.0`, `0${NOW}`, `-${NOW}`, `${NOW}s`]) {
			expect(await verifyWebhook(secret, { ...headers, "webhook-timestamp": timestamp }, BODY)).toBe(false);
		}
	});

	it("takes the clock and tolerance it is given", async () => {
		const secret = newWebhookSecret();
		const headers = await webhookHeaders([secret], ID, 1_000, BODY);
		expect(await verifyWebhook(secret, headers, BODY)).toBe(false);
		expect(await verifyWebhook(secret, headers, BODY, 1_300)).toBe(true);
		expect(await verifyWebhook(secret, headers, BODY, 1_300, 299)).toBe(false);
	});

	it("throws on a malformed secret rather than calling the delivery bad", async () => {
		const headers = await webhookHeaders([newWebhookSecret()], ID, NOW, BODY);
		await expect(verifyWebhook("not-a-secret", headers, BODY)).rejects.toThrow(/not a webhook secret/);
	});
});
