import { describe, expect, it } from "vitest";
import { checkWebhookTarget, webhookTargetPolicy } from "./target";

const GUARDED = { allowLoopback: false };
const LOOPBACK_ALLOWED = { allowLoopback: true };

function reasonOf(raw: string, policy = GUARDED): string {
	const verdict = checkWebhookTarget(raw, policy);
	return verdict.ok ? "accepted" : verdict.reason;
}

describe("checkWebhookTarget with the guard on", () => {
	const refused: [raw: string, reason: RegExp][] = [
		["https://127.0.0.1/", /127\.0\.0\.1 is loopback/],
		["https://127.8.9.10:8443/", /loopback/],
		["https://[::1]/", /::1 is loopback/],
		["http://169.254.169.254/latest/meta-data", /169\.254\.169\.254 is link-local/],
		["https://10.0.0.1/", /^the address 10\.0\.0\.1 is private$/],
		["https://192.168.1.1/", /192\.168\.1\.1 is private/],
		["https://172.16.0.1/", /172\.16\.0\.1 is private/],
		["https://172.31.255.255/", /private/],
		["https://100.64.0.1/", /100\.64\.0\.1 is in carrier-grade NAT space/],
		["https://0.0.0.0/", /0\.0\.0\.0 is unspecified/],
		["https://255.255.255.255/", /broadcast/],
		["https://224.0.0.1/", /multicast/],
		["https://192.0.2.1/", /reserved/],
		["https://198.51.100.7/", /reserved/],
		["https://240.0.0.1/", /reserved/],
		// The URL parser's other IPv4 spellings reach the same addresses.
		["https://2130706433/", /127\.0\.0\.1 is loopback/],
		["https://0177.0.0.1/", /127\.0\.0\.1 is loopback/],
		["https://0x7f.1/", /127\.0\.0\.1 is loopback/],
		["https://127.1/", /127\.0\.0\.1 is loopback/],
		["https://0/", /0\.0\.0\.0 is unspecified/],
		["https://%31%32%37.0.0.1/", /127\.0\.0\.1 is loopback/],
		["https://127.0.0.1./", /127\.0\.0\.1 is loopback/],
		// IPv6.
		["https://[::]/", /:: is unspecified/],
		["https://[fd00::1]/", /fd00::1 is private/],
		["https://[fc00::1]/", /private/],
		["https://[fe80::1]/", /fe80::1 is link-local/],
		["https://[ff02::1]/", /multicast/],
		["https://[2001:db8::1]/", /reserved/],
		["https://[::ffff:127.0.0.1]/", /127\.0\.0\.1 is loopback/],
		["https://[::ffff:7f00:1]/", /127\.0\.0\.1 is loopback/],
		["https://[::ffff:10.0.0.1]/", /10\.0\.0\.1 is private/],
		["https://[::ffff:169.254.169.254]/", /link-local/],
		["https://[::127.0.0.1]/", /not a public address/],
		["https://[64:ff9b::7f00:1]/", /NAT64/],
		["https://[64:ff9b::8.8.8.8]/", /NAT64/],
		["https://[2002:7f00:1::1]/", /6to4/],
		["https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", /Teredo/],
		["https://[100::1]/", /not a public address/],
		// Names.
		["https://localhost/", /localhost is loopback/],
		["https://localhost./", /localhost is loopback/],
		["https://LOCALHOST:8080/", /localhost is loopback/],
		["https://api.localhost/", /\.localhost/],
		["https://printer.local/", /printer\.local is in \.local/],
		["https://printer.local./", /\.local/],
		["https://metadata.google.internal/", /\.internal/],
		["https://router.home.arpa/", /\.home\.arpa/],
		["https://nas.lan/", /\.lan/],
		["https://intranet/", /intranet is not a public domain name/],
		["https://intranet./", /not a public domain name/],
		["https://ex_ample.com/", /not a valid domain name/],
		["https://a..b/", /not a valid domain name/],
		["https://example.com../", /not a valid domain name/],
		["https://-bad.example.com/", /not a valid domain name/],
		["https://bad-.example.com/", /not a valid domain name/],
		["https://*.example.com/", /not a valid domain name/],
		[`https://${"a".repeat(64)}.com/`, /not a valid domain name/],
		[`https://${"abcdefghi.".repeat(26)}com/`, /not a valid domain name/],
		// URL shape.
		["https://user:pw@example.com/", /user name or password/],
		["https://user@example.com/", /user name or password/],
		["http://example.com/", /must use https/],
		["ftp://example.com/", /must use https/],
		["ws://example.com/", /must use https/],
		["file:///etc/passwd", /must use https/],
		["javascript:alert(1)", /must use https/],
		["data:text/plain,hi", /must use https/],
		["example.com/hook", /not valid/],
		["https://", /not valid/],
		["https://exa mple.com/", /not valid/],
		["https://[fe80::1%25eth0]/", /not valid/],
		["https://example.123/", /not valid/],
		["", /not valid/],
		[`https://example.com/${"x".repeat(2030)}`, /longer than 2048 characters/],
	];
	it.each(refused)("refuses %s", (raw, reason) => {
		expect(reasonOf(raw)).toMatch(reason);
	});

	const accepted: [raw: string, href: string][] = [
		["https://example.com/hook", "https://example.com/hook"],
		["https://hooks.example.com:8443/x?y=1", "https://hooks.example.com:8443/x?y=1"],
		["https://93.184.216.34/", "https://93.184.216.34/"],
		["https://[2606:4700::1111]/", "https://[2606:4700::1111]/"],
		["https://8.8.8.8:1/", "https://8.8.8.8:1/"],
		["HTTPS://Hooks.Example.COM:443/In", "https://hooks.example.com/In"],
		["https://example.com./hook", "https://example.com./hook"],
		["https://xn--bcher-kva.example/", "https://xn--bcher-kva.example/"],
		["https://bücher.example/", "https://xn--bcher-kva.example/"],
		["https://a-b.c0.example.co.uk/p", "https://a-b.c0.example.co.uk/p"],
		["https://my.localhost.example.com/", "https://my.localhost.example.com/"],
		["https://172.32.0.1/", "https://172.32.0.1/"],
		["https://100.128.0.1/", "https://100.128.0.1/"],
		[`https://${"abcdefghi.".repeat(25)}com/`, `https://${"abcdefghi.".repeat(25)}com/`],
		[`https://example.com/${"x".repeat(2028)}`, `https://example.com/${"x".repeat(2028)}`],
	];
	it.each(accepted)("accepts %s", (raw, href) => {
		const verdict = checkWebhookTarget(raw, GUARDED);
		expect(verdict.ok && verdict.url.href).toBe(href);
	});

	it("drops a fragment, which is never sent", () => {
		const verdict = checkWebhookTarget("https://example.com/hook?a=1#section", GUARDED);
		expect(verdict.ok && verdict.url.href).toBe("https://example.com/hook?a=1");
	});

	it("judges the length after the URL parser has expanded the host", () => {
		const raw = `https://ü.example/${"x".repeat(2028)}`;
		expect(raw.length).toBeLessThanOrEqual(2048);
		expect(reasonOf(raw)).toMatch(/longer than 2048/);
	});
});

describe("checkWebhookTarget with loopback allowed", () => {
	it.each([
		["http://127.0.0.1:9999/", "http://127.0.0.1:9999/"],
		["http://localhost:1234/", "http://localhost:1234/"],
		["http://localhost.:1234/x", "http://localhost.:1234/x"],
		["https://127.0.0.1/", "https://127.0.0.1/"],
		["http://127.44.0.1/", "http://127.44.0.1/"],
		["http://[::1]:8787/hook", "http://[::1]:8787/hook"],
		["http://[::ffff:127.0.0.1]/", "http://[::ffff:7f00:1]/"],
		["http://2130706433:80/", "http://127.0.0.1/"],
		["https://example.com/hook", "https://example.com/hook"],
	])("accepts %s", (raw, href) => {
		const verdict = checkWebhookTarget(raw, LOOPBACK_ALLOWED);
		expect(verdict.ok && verdict.url.href).toBe(href);
	});

	it.each([
		["http://10.0.0.1/", /10\.0\.0\.1 is private/],
		["http://169.254.169.254/", /link-local/],
		["https://192.168.1.1/", /private/],
		["http://[fe80::1]/", /link-local/],
		["http://[fd00::1]/", /private/],
		["http://0.0.0.0/", /unspecified/],
		["http://[::]/", /unspecified/],
		["http://api.localhost/", /\.localhost/],
		["http://printer.local/", /\.local/],
		["http://example.com/", /must use https/],
		["http://user:pw@127.0.0.1/", /user name or password/],
		["ftp://127.0.0.1/", /must use https/],
	])("still refuses %s", (raw, reason) => {
		expect(reasonOf(raw, LOOPBACK_ALLOWED)).toMatch(reason);
	});
});

describe("webhookTargetPolicy", () => {
	it.each([
		[undefined, false],
		["true", true],
		["false", false],
		["TRUE", false],
		["True", false],
		["1", false],
		["yes", false],
		[" true", false],
		["", false],
	])("WEBHOOK_ALLOW_LOOPBACK=%j → allowLoopback %s", (value, want) => {
		expect(webhookTargetPolicy(value === undefined ? {} : { WEBHOOK_ALLOW_LOOPBACK: value })).toEqual({ allowLoopback: want });
	});
});
