/**
 * File and folder names: what we accept, and when two names are "the same".
 *
 * A name must be creatable on Windows, macOS and Linux alike, so that every
 * device of a user can sync every file. The exact rule is in docs/api.md
 * ("Names"); keep the two in step.
 */

/** Longest name, in UTF-8 bytes: the common limit of NTFS, APFS and ext4. */
export const MAX_NAME_BYTES = 255;

// Windows forbids these anywhere in a name; ':' is also the macOS HFS
// separator, and '/' and NUL are forbidden everywhere.
const FORBIDDEN_CHARS = /[\u0000-\u001f\u007f<>:"/\\|?*]/u;
const FORBIDDEN_CHARS_GLOBAL = new RegExp(FORBIDDEN_CHARS.source, "gu");

// Windows reserves device names, with or without an extension ("CON.txt"),
// including the superscript-digit COM/LPT forms.
// https://learn.microsoft.com/windows/win32/fileio/naming-a-file
const RESERVED_STEMS = /^(con|prn|aux|nul|conin\$|conout\$|com[0-9¹²³]|lpt[0-9¹²³])$/u;

export type NameCheck = { ok: true; name: string; key: string } | { ok: false; reason: string };

/** Validates a proposed name and returns its NFC form and its sibling-comparison key. */
export function checkName(raw: string): NameCheck {
	const name = raw.normalize("NFC");
	if (name.length === 0) return { ok: false, reason: "name must not be empty" };
	if (new TextEncoder().encode(name).byteLength > MAX_NAME_BYTES) {
		return { ok: false, reason: `name must be at most ${MAX_NAME_BYTES} bytes in UTF-8` };
	}
	if (name === "." || name === "..") return { ok: false, reason: `"${name}" is not a valid name` };
	const bad = FORBIDDEN_CHARS.exec(name);
	if (bad) {
		const ch = bad[0];
		const shown = ch < " " || ch === "\u007f" ? `U+${ch.charCodeAt(0).toString(16).padStart(4, "0")}` : `"${ch}"`;
		return { ok: false, reason: `name must not contain ${shown}` };
	}
	if (/[. ]$/u.test(name)) return { ok: false, reason: "name must not end with a dot or a space" };
	const stem = (name.split(".")[0] ?? "").toLowerCase().trimEnd();
	if (RESERVED_STEMS.test(stem)) return { ok: false, reason: `"${name}" is a reserved name on Windows` };
	if (/[\ud800-\udfff]/u.test(name)) return { ok: false, reason: "name must be valid Unicode" };
	return { ok: true, name, key: nameKey(name) };
}

/**
 * The key two sibling names must not share: NFC, then a full case fold
 * approximated by upper-then-lower casing (maps "ß" and "SS" together, and
 * final sigma with sigma), matching the case-insensitive, normalization-
 * insensitive lookups of APFS and NTFS.
 */
export function nameKey(name: string): string {
	return name.normalize("NFC").toUpperCase().toLowerCase().normalize("NFC");
}

/** Splits "report.final.pdf" into ["report.final", ".pdf"]; dotfiles have no extension. */
export function splitExtension(name: string): [stem: string, ext: string] {
	const dot = name.lastIndexOf(".");
	if (dot <= 0) return [name, ""];
	return [name.slice(0, dot), name.slice(dot)];
}

/**
 * `<stem> (conflicted copy <device> YYYY-MM-DD HHMMSS)<ext>`, per docs/api.md. The
 * device name is made name-safe and capped, and the stem shortened by whole
 * code points, so the result is always a valid name.
 */
export function conflictedCopyName(name: string, deviceName: string, at: Date): string {
	const [stem, ext] = splitExtension(name);
	const safeDevice = Array.from(deviceName.replace(FORBIDDEN_CHARS_GLOBAL, "-").trim()).slice(0, 40).join("").trim();
	const device = safeDevice || "unknown device";
	const iso = at.toISOString();
	const stamp = `${iso.slice(0, 10)} ${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}`;
	return fitName(stem, ` (conflicted copy ${device} ${stamp})${ext}`);
}

/** `stem + suffix`, with the stem cut (by code points) until the whole is a valid name. */
export function fitName(stem: string, suffix: string): string {
	const points = Array.from(stem);
	for (let keep = points.length; keep >= 1; keep--) {
		const candidate = points.slice(0, keep).join("").trimEnd() + suffix;
		if (checkName(candidate).ok) return candidate;
	}
	return `file${suffix}`;
}

/**
 * `desired`, then `desired` with " 2", " 3", … before the extension: the
 * candidates for a free name, in order, each a valid name.
 */
export function numberedNames(desired: string, count: number, from = 1): string[] {
	const [stem, ext] = splitExtension(desired);
	const out: string[] = [];
	for (let n = from; n < from + count; n++) out.push(n === 1 ? desired : fitName(stem, ` ${n}${ext}`));
	return out;
}
