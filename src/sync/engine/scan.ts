/// <reference types="node" />
/**
 * The scanner: walks the synced folder into L. A file whose stat fingerprint
 * (device, inode, size, mtime in ns) matches the last scan keeps its hash;
 * anything else is hashed again, and so is a file modified within the last
 * few seconds, whose mtime cannot tell two writes apart ("racy git",
 * https://git-scm.com/docs/racy-git).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import type { LocalItem } from "../planner";
import { STATE_DIR } from "../state";

/** L as stored: the planner's item plus the fingerprint the next scan compares. */
export interface ScannedItem extends LocalItem {
	dev: string;
	mtimeNs: string;
}

/** An entry the sync cannot represent (a symlink, a socket, a name that is not NFC). */
export interface ScanProblem {
	path: string;
	code: "symlink" | "special_file" | "not_nfc" | "unreadable";
	message: string;
}

export interface ScanResult {
	items: ScannedItem[];
	problems: ScanProblem[];
	/** Bytes read to hash changed files. */
	hashedBytes: number;
}

/** A modification this recent may be followed by another within the same mtime tick: hash it again next time. */
const RACY_NS = 3_000_000_000n;

/** SHA-256 of a file, lowercase hex, streamed. */
export async function hashFile(path: string): Promise<string> {
	const hash = createHash("sha256");
	for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
	return hash.digest("hex");
}

/**
 * `dev:ino:birth`, the identity a rename keeps. The birth time (statx) tells
 * a new file that got a deleted file's inode number, which Linux hands out
 * again at once, from a rename of the old one; where the filesystem has no
 * birth time it is 0 and the inode alone decides.
 */
export function fileIdOf(stat: { dev: bigint; ino: bigint; birthtimeNs: bigint }): string {
	return `${stat.dev}:${stat.ino}:${stat.birthtimeNs}`;
}

/**
 * Scans `root` (the `.drive` folder excluded).
 * @param previous L of the last scan, by path, to reuse hashes of unchanged files.
 */
export async function scan(root: string, previous: ReadonlyMap<string, LocalItem & { mtimeNs?: string | null }>): Promise<ScanResult> {
	const items: ScannedItem[] = [];
	const problems: ScanProblem[] = [];
	let hashedBytes = 0;
	const now = BigInt(Date.now()) * 1_000_000n;
	const walk = async (dir: string, rel: string): Promise<void> => {
		let names: string[];
		try {
			names = await readdir(dir);
		} catch (err) {
			// A folder removed during the scan is simply gone; anything else is reported.
			if ((err as NodeJS.ErrnoException).code !== "ENOENT")
				problems.push({ path: rel, code: "unreadable", message: (err as Error).message });
			return;
		}
		for (const name of names) {
			if (rel === "" && name === STATE_DIR) continue;
			const path = rel === "" ? name : `${rel}/${name}`;
			const abs = join(dir, name);
			if (name !== name.normalize("NFC")) {
				problems.push({ path, code: "not_nfc", message: "the name is not in Unicode NFC form; rename it to sync it" });
				continue;
			}
			let st;
			try {
				st = await lstat(abs, { bigint: true });
			} catch {
				continue; // removed since readdir
			}
			const base = { path, dev: String(st.dev), fileId: fileIdOf(st), mtimeNs: String(st.mtimeNs) };
			if (st.isSymbolicLink()) {
				problems.push({ path, code: "symlink", message: "symbolic links are not synced" });
				continue;
			}
			if (st.isDirectory()) {
				items.push({ ...base, type: "folder", contentHash: null, size: 0 });
				await walk(abs, path);
				continue;
			}
			if (!st.isFile()) {
				problems.push({ path, code: "special_file", message: "only regular files and folders are synced" });
				continue;
			}
			const size = Number(st.size);
			const before = previous.get(path);
			const unchanged =
				before !== undefined &&
				before.type === "file" &&
				before.contentHash !== null &&
				before.fileId === base.fileId &&
				before.size === size &&
				before.mtimeNs === base.mtimeNs &&
				now - st.mtimeNs > RACY_NS;
			let contentHash: string;
			if (unchanged) contentHash = before.contentHash as string;
			else {
				try {
					contentHash = await hashFile(abs);
					hashedBytes += size;
				} catch (err) {
					if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
					problems.push({ path, code: "unreadable", message: (err as Error).message });
					continue;
				}
			}
			items.push({ ...base, type: "file", contentHash, size });
		}
	};
	await walk(root, "");
	return { items, problems, hashedBytes };
}
