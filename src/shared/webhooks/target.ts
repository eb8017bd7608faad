/**
 * The SSRF guard for webhook URLs, applied when an endpoint is registered and
 * again before every delivery attempt: only https to a public DNS name or a
 * global unicast address (https://owasp.org/www-community/attacks/Server_Side_Request_Forgery).
 * It judges the URL as written; a public name that resolves to a private
 * address is the fetch layer's concern.
 */
import ipaddr from "ipaddr.js";

/** What the guard lets through beyond public https targets. */
export interface TargetPolicy {
	/** Also admit loopback targets (127.0.0.0/8, [::1], localhost), over http or https: local development and tests only. */
	allowLoopback: boolean;
}

/** The guard's answer; `reason` is a short sentence for an API error message. */
export type TargetVerdict = { ok: true; url: URL } | { ok: false; reason: string };

const MAX_URL_CHARS = 2048;
const MAX_NAME_CHARS = 253;
/** One LDH label (RFC 1123 §2.1): underscores are refused too, since no certificate may name them. */
const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
/**
 * Names that resolve only inside a network: RFC 6761 (localhost), RFC 6762
 * (local, and the private TLDs of its appendix G), RFC 8375 (home.arpa),
 * ICANN's reserved "internal", and the common "localdomain".
 */
const LOCAL_SUFFIXES = ["localhost", "local", "internal", "home.arpa", "lan", "intranet", "private", "corp", "home", "localdomain"];
/** IANA's global unicast block; ipaddr.js calls the rest of ::/0 (e.g. the deprecated ::/96 IPv4-compatible form) "unicast" too. */
const GLOBAL_UNICAST_V6 = ipaddr.IPv6.parseCIDR("2000::/3");

/** How each refused ipaddr.js range reads in "the address X is …". */
const RANGE_WORDS: Record<string, string> = {
	unspecified: "unspecified",
	broadcast: "broadcast",
	multicast: "multicast",
	linkLocal: "link-local",
	loopback: "loopback",
	carrierGradeNat: "in carrier-grade NAT space",
	private: "private",
	uniqueLocal: "private (unique local)",
	reserved: "reserved",
	benchmarking: "reserved for benchmarks",
	rfc6052: "a NAT64 address",
	rfc6145: "an IPv4-translated address",
	"6to4": "a 6to4 address",
	teredo: "a Teredo address",
};

/** What the host of a URL is, as the guard sees it. */
interface HostJudgement {
	loopback: boolean;
	/** Why it is refused when loopback is not allowed; null for a public host. */
	refusal: string | null;
}

function refuse(reason: string): TargetVerdict {
	return { ok: false, reason };
}

function judgeAddress(address: ipaddr.IPv4 | ipaddr.IPv6, shown: string): HostJudgement {
	const range = address.range();
	const loopback = range === "loopback";
	if (range === "unicast" && (address.kind() === "ipv4" || address.match(GLOBAL_UNICAST_V6))) return { loopback, refusal: null };
	return { loopback, refusal: `the address ${shown} is ${RANGE_WORDS[range] ?? "not a public address"}` };
}

function judgeHost(hostname: string): HostJudgement {
	if (hostname.startsWith("[") && hostname.endsWith("]")) {
		const inner = hostname.slice(1, -1);
		if (!ipaddr.IPv6.isValid(inner)) return { loopback: false, refusal: `the host ${hostname} is not a valid IPv6 address` };
		const v6 = ipaddr.IPv6.parse(inner);
		// ::ffff:a.b.c.d reaches the IPv4 address a.b.c.d, so it is judged as that address.
		if (v6.isIPv4MappedAddress()) {
			const v4 = v6.toIPv4Address();
			return judgeAddress(v4, v4.toString());
		}
		return judgeAddress(v6, inner);
	}
	// "localhost." is localhost: a trailing dot only marks the name as absolute.
	const name = (hostname.endsWith(".") ? hostname.slice(0, -1) : hostname).toLowerCase();
	const labels = name.split(".");
	// The URL parser turns every IPv4 spelling (2130706433, 0x7f.1, 0177.0.0.1) into dotted decimal;
	// anything else that ends in a number is refused rather than guessed at.
	if (/^(?:[0-9]+|0x[0-9a-f]*)$/.test(labels[labels.length - 1] ?? "")) {
		if (!ipaddr.IPv4.isValidFourPartDecimal(name)) return { loopback: false, refusal: `the host ${hostname} is not a valid IPv4 address` };
		return judgeAddress(ipaddr.IPv4.parse(name), name);
	}
	if (name.length > MAX_NAME_CHARS || !labels.every((label) => LABEL_RE.test(label))) {
		return { loopback: false, refusal: `the host ${hostname} is not a valid domain name` };
	}
	if (name === "localhost") return { loopback: true, refusal: "the host localhost is loopback" };
	if (labels.length === 1) return { loopback: false, refusal: `the host ${hostname} is not a public domain name (it has no dot)` };
	const suffix = LOCAL_SUFFIXES.find((s) => name.endsWith(`.${s}`));
	if (suffix !== undefined)
		return { loopback: false, refusal: `the host ${hostname} is in .${suffix}, which only resolves inside a network` };
	return { loopback: false, refusal: null };
}

/**
 * Judges a webhook URL. Accepted: `https:` to a public DNS name or a global
 * unicast IP literal, any port; with `allowLoopback`, also loopback targets
 * over `http:` or `https:`. A fragment is never sent, so it is dropped, not
 * refused: store `url.href` of the verdict rather than `raw`.
 */
export function checkWebhookTarget(raw: string, policy: TargetPolicy): TargetVerdict {
	if (raw.length > MAX_URL_CHARS) return refuse(`the URL is longer than ${MAX_URL_CHARS} characters`);
	let url: URL;
	try {
		url = new URL(raw);
	} catch {
		return refuse("the URL is not valid");
	}
	url.hash = "";
	if (url.protocol !== "https:" && url.protocol !== "http:") return refuse("the URL must use https");
	// Punycode can make the parsed URL longer than the text given.
	if (url.href.length > MAX_URL_CHARS) return refuse(`the URL is longer than ${MAX_URL_CHARS} characters`);
	if (url.username !== "" || url.password !== "") return refuse("the URL must not contain a user name or password");
	const host = judgeHost(url.hostname);
	if (host.loopback && policy.allowLoopback) return { ok: true, url };
	if (host.refusal !== null) return refuse(host.refusal);
	if (url.protocol !== "https:") return refuse("the URL must use https");
	return { ok: true, url };
}

/** The policy from the environment: loopback only when WEBHOOK_ALLOW_LOOPBACK is exactly "true". */
export function webhookTargetPolicy(env: { WEBHOOK_ALLOW_LOOPBACK?: string }): TargetPolicy {
	return { allowLoopback: env.WEBHOOK_ALLOW_LOOPBACK === "true" };
}
