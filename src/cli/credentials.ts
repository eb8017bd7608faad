/// <reference types="node" />
/**
 * The CLI's files in its config directory: `credentials.json` (never the
 * password) and small state files, all written atomically with owner-only
 * permissions, like `gh` and rclone keep theirs.
 *
 * @module
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** What a signed-in CLI keeps. */
export interface Credentials {
	server: string;
	email: string;
	user_id: string;
	device_id: string;
	refresh_token: string;
	/** The last access token and when it expires (ms since the epoch), shared by every process until then. */
	access_token: string;
	access_expires_at: number;
}

/**
 * `$DRIVE_CONFIG_DIR`, else `$XDG_CONFIG_HOME/drive`, else `~/.config/drive`
 * (XDG Base Directory Specification).
 */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
	if (env.DRIVE_CONFIG_DIR) return env.DRIVE_CONFIG_DIR;
	const base = env.XDG_CONFIG_HOME || join(homedir(), ".config");
	return join(base, "drive");
}

/** Creates the directory with mode 0700 (and tightens an existing one). */
export function ensureDir(dir: string): void {
	mkdirSync(dir, { recursive: true, mode: 0o700 });
	chmodSync(dir, 0o700);
}

/** Reads a JSON file of the config directory; undefined when it does not exist. */
export function readJson<T>(dir: string, name: string): T | undefined {
	let text: string;
	try {
		text = readFileSync(join(dir, name), "utf8");
	} catch (err) {
		if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
		throw err;
	}
	return JSON.parse(text) as T;
}

/**
 * Writes a JSON file atomically: a temporary file with mode 0600, fsynced,
 * renamed over the old one, so a crash or a reader in another process never
 * sees half a file.
 */
export function writeJson(dir: string, name: string, value: unknown): void {
	ensureDir(dir);
	const path = join(dir, name);
	const temp = `${path}.${process.pid}.tmp`;
	const fd = openSync(temp, "w", 0o600);
	try {
		writeSync(fd, `${JSON.stringify(value, null, "\t")}\n`);
		fsyncSync(fd);
	} finally {
		closeSync(fd);
	}
	renameSync(temp, path);
}

export function readCredentials(dir: string): Credentials | undefined {
	return readJson<Credentials>(dir, "credentials.json");
}

export function writeCredentials(dir: string, credentials: Credentials): void {
	writeJson(dir, "credentials.json", credentials);
}

export function removeCredentials(dir: string): void {
	rmSync(join(dir, "credentials.json"), { force: true });
}
