/**
 * The web app's session cookie (docs/decisions/0026): which origins may
 * use the cookie routes, the cookie's name by scheme, and the device name
 * a browser gets when it gives none.
 */
import { DeviceName } from "../../../src/shared/schemas/auth";

/** The refresh-token cookie an origin may hold. */
export interface RefreshCookie {
	name: "__Host-drive_rt" | "drive_rt";
	secure: boolean;
}

// Browsers treat these as secure contexts over plain http (the local stack).
const LOOPBACK_HOSTS = new Set(["127.0.0.1", "[::1]", "localhost"]);

/**
 * The cookie of the request's origin: `__Host-` with `Secure` on https (no
 * subdomain or other path can set or shadow it), a plain name on a
 * loopback http origin, where `Secure` cookies are not stored alike by every
 * browser; null on any other http origin, where the token would travel in clear.
 */
export function refreshCookie(url: URL): RefreshCookie | null {
	if (url.protocol === "https:") return { name: "__Host-drive_rt", secure: true };
	if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) return { name: "drive_rt", secure: false };
	return null;
}

/** The `Set-Cookie` value that stores `value` for `maxAgeSeconds` (0 clears the cookie). */
export function setCookieValue(cookie: RefreshCookie, value: string, maxAgeSeconds: number): string {
	return `${cookie.name}=${value}; Max-Age=${maxAgeSeconds}; Path=/; HttpOnly; SameSite=Strict${cookie.secure ? "; Secure" : ""}`;
}

/** The `Set-Cookie` value that removes the cookie. */
export function clearCookieValue(cookie: RefreshCookie): string {
	return setCookieValue(cookie, "", 0);
}

/**
 * Whether a request comes from another origin: by Fetch Metadata when the
 * browser sends it, else by `Origin`. A request with neither is no browser's
 * (curl, a script), so no ambient cookie can be abused through it.
 * https://web.dev/articles/fetch-metadata
 */
export function isCrossOrigin(url: URL, secFetchSite: string | undefined, origin: string | undefined): boolean {
	if (secFetchSite !== undefined && secFetchSite !== "same-origin") return true;
	return origin !== undefined && origin !== url.origin;
}

/** The request headers a browser names itself with. */
export interface BrowserHints {
	userAgent: string | undefined;
	/** `Sec-CH-UA`: names Chromium builds apart, which share one User-Agent. */
	brands: string | undefined;
	/** `Sec-CH-UA-Platform`. */
	platform: string | undefined;
}

const FALLBACK_NAME = "Web browser";

/**
 * The device name of a web sign-in that gives none, like "Chromium on Linux
 * (web)", so that it can be told apart in the device list. Client hints
 * first, then the User-Agent; held to the device-name rules.
 */
export function webDeviceName(hints: BrowserHints): string {
	const browser = brandOf(hints.brands) ?? browserOf(hints.userAgent ?? "");
	const os = platformOf(hints.platform) ?? osOf(hints.userAgent ?? "");
	const name = `${browser ?? FALLBACK_NAME}${os === null ? "" : ` on ${os}`} (web)`;
	const checked = DeviceName.safeParse(name);
	return checked.success ? checked.data : `${FALLBACK_NAME} (web)`;
}

/** A header value a client chose, shown back to its user only: printable and short. */
function printable(value: string): string | null {
	const cleaned = value
		.replace(/[\u0000-\u001f\u007f]/gu, "")
		.trim()
		.slice(0, 40);
	return cleaned === "" ? null : cleaned;
}

/**
 * The browser's brand from `Sec-CH-UA`: one that is not "Chromium" (Chrome,
 * Edge, Opera also list it) and not the GREASE entry ("Not A;Brand"), else Chromium.
 * https://wicg.github.io/ua-client-hints/#grease
 */
function brandOf(header: string | undefined): string | null {
	if (header === undefined) return null;
	// Bounded before any regex: a long crafted header must not cost CPU before the throttle counts the attempt.
	const brands = [...header.slice(0, MAX_HINT_LENGTH).matchAll(/"([^"]*)"\s*;\s*v="[^"]*"/gu)]
		.map((m) => m[1] ?? "")
		.filter((b) => !/not.*brand/iu.test(b));
	const brand = brands.find((b) => b !== "Chromium") ?? brands.find((b) => b === "Chromium");
	return brand === undefined ? null : printable(brand);
}

function platformOf(header: string | undefined): string | null {
	if (header === undefined) return null;
	return printable(header.slice(0, MAX_HINT_LENGTH).replace(/^"|"$/gu, ""));
}

// Most specific first: Edge and Opera also say Chrome, and Chrome also says Safari.
const BROWSERS: [RegExp, string][] = [
	[/\bEdg(?:e|A|iOS)?\//u, "Edge"],
	[/\bOPR\//u, "Opera"],
	[/\b(?:Firefox|FxiOS)\//u, "Firefox"],
	[/\bChromium\//u, "Chromium"],
	[/\b(?:Chrome|CriOS|HeadlessChrome)\//u, "Chrome"],
	[/\bSafari\//u, "Safari"],
];

// Android says Linux, and iOS says Mac OS X.
const SYSTEMS: [RegExp, string][] = [
	[/\bWindows\b/u, "Windows"],
	[/\bAndroid\b/u, "Android"],
	[/\b(?:iPhone|iPad|iPod)\b/u, "iOS"],
	[/\bCrOS\b/u, "ChromeOS"],
	[/\bMac OS X\b|\bMacintosh\b/u, "macOS"],
	[/\bLinux\b/u, "Linux"],
];

function browserOf(userAgent: string): string | null {
	const head = userAgent.slice(0, MAX_HINT_LENGTH);
	return BROWSERS.find(([re]) => re.test(head))?.[1] ?? null;
}

function osOf(userAgent: string): string | null {
	const head = userAgent.slice(0, MAX_HINT_LENGTH);
	return SYSTEMS.find(([re]) => re.test(head))?.[1] ?? null;
}

/** Real User-Agent and client-hint headers are far shorter. */
const MAX_HINT_LENGTH = 512;
