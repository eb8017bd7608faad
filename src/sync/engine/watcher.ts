/// <reference types="node" />
/**
 * File-system hints for `drive sync --watch`: any change outside `.drive/`
 * asks for a round (debounced). The watcher never decides anything: every
 * round rescans. On Linux, Node's `recursive: true` watches every file with
 * stat polling, which costs CPU all the time with 10,000 files; one inotify
 * watch per folder sees the same changes (a folder's watch reports its
 * entries' writes) for next to nothing, so there the folder set follows
 * each scan. Elsewhere the platform's recursive watcher (FSEvents,
 * ReadDirectoryChangesW) is used as is.
 */
import { watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { STATE_DIR } from "../state";

const DEBOUNCE_MS = 100;

export class DiskWatcher {
	readonly #root: string;
	readonly #onChange: () => void;
	readonly #perFolder: boolean;
	readonly #watchers = new Map<string, FSWatcher>();
	#timer: NodeJS.Timeout | undefined;
	#closed = false;

	constructor(root: string, onChange: () => void, platform: NodeJS.Platform = process.platform) {
		this.#root = root;
		this.#onChange = onChange;
		this.#perFolder = platform === "linux";
		if (!this.#perFolder) this.#add("", { recursive: true });
		else this.#add("", {});
	}

	#hint(): void {
		clearTimeout(this.#timer);
		this.#timer = setTimeout(this.#onChange, DEBOUNCE_MS);
	}

	#add(folder: string, options: { recursive?: boolean }): void {
		try {
			const watcher = watch(folder === "" ? this.#root : join(this.#root, ...folder.split("/")), options, (_event, name) => {
				const file = name === null ? "" : String(name);
				if (folder === "" && (file === STATE_DIR || file.startsWith(`${STATE_DIR}/`))) return;
				this.#hint();
			});
			// A watched folder that goes away errors on some platforms: a round rescans and the next `follow` drops it.
			watcher.on("error", () => {
				this.#watchers.delete(folder);
				this.#hint();
			});
			this.#watchers.set(folder, watcher);
		} catch {
			// Out of watches (or the folder just vanished): the periodic rescan still finds every change.
		}
	}

	/** After a scan: watch exactly these folders (relative paths; the root is always watched). */
	follow(folders: Iterable<string>): void {
		if (!this.#perFolder || this.#closed) return;
		const want = new Set<string>(["", ...folders]);
		for (const [folder, watcher] of this.#watchers) {
			if (want.has(folder)) continue;
			watcher.close();
			this.#watchers.delete(folder);
		}
		for (const folder of want) if (!this.#watchers.has(folder)) this.#add(folder, {});
	}

	close(): void {
		this.#closed = true;
		clearTimeout(this.#timer);
		for (const watcher of this.#watchers.values()) watcher.close();
		this.#watchers.clear();
	}
}
