/// <reference types="node" />
/**
 * Transfer progress on stderr: a live line redrawn at most 10 times a
 * second on a terminal, a plain line a second otherwise, NDJSON events with
 * `--json`, nothing with `--quiet`.
 *
 * @module
 */
import { clearLine, cursorTo } from "node:readline";
import { formatBytes } from "./output";

/** Where a transfer stands. */
export interface ProgressState {
	filesDone: number;
	filesTotal: number;
	bytesDone: number;
	bytesTotal: number;
}

export type ProgressMode = "tty" | "plain" | "json" | "quiet";

/** Picks the mode for a stream: `json` wins, then whether it is a terminal. */
export function progressMode(stream: NodeJS.WriteStream, options: { json: boolean; quiet: boolean }): ProgressMode {
	if (options.quiet) return "quiet";
	if (options.json) return "json";
	return stream.isTTY ? "tty" : "plain";
}

/** Reports a transfer's progress; call {@link update} as often as you like. */
export class Progress {
	readonly #started: number;
	readonly #interval: number;
	#lastDraw = Number.NEGATIVE_INFINITY;
	#drawn = false;
	readonly #state: ProgressState = { filesDone: 0, filesTotal: 0, bytesDone: 0, bytesTotal: 0 };

	constructor(
		readonly mode: ProgressMode,
		readonly label: string,
		readonly stream: NodeJS.WriteStream = process.stderr,
		readonly now: () => number = Date.now,
	) {
		this.#interval = mode === "tty" ? 100 : 1000;
		this.#started = now();
	}

	/** Merges `patch` into the state and redraws if the last drawing is old enough. */
	update(patch: Partial<ProgressState>): void {
		Object.assign(this.#state, patch);
		const now = this.now();
		if (now - this.#lastDraw < this.#interval) return;
		this.#lastDraw = now;
		this.#draw(false);
	}

	/** Draws the final state and ends the live line. */
	done(patch: Partial<ProgressState> = {}): void {
		Object.assign(this.#state, patch);
		this.#draw(true);
	}

	#draw(final: boolean): void {
		const s = this.#state;
		const elapsed = Math.max(1, this.now() - this.#started) / 1000;
		const speed = s.bytesDone / elapsed;
		const left = speed > 0 && s.bytesTotal > s.bytesDone ? (s.bytesTotal - s.bytesDone) / speed : 0;
		switch (this.mode) {
			case "quiet":
				return;
			case "json":
				this.stream.write(
					`${JSON.stringify({
						type: final ? "done" : "progress",
						label: this.label,
						files_done: s.filesDone,
						files_total: s.filesTotal,
						bytes_done: s.bytesDone,
						bytes_total: s.bytesTotal,
						bytes_per_second: Math.round(speed),
						seconds_left: Math.ceil(left),
					})}\n`,
				);
				return;
			case "plain":
			case "tty": {
				const line =
					`${this.label}: ${s.filesDone}/${s.filesTotal} files, ${formatBytes(s.bytesDone)}/${formatBytes(s.bytesTotal)}, ` +
					`${formatBytes(Math.round(speed))}/s` +
					(final ? "" : `, ${formatDuration(left)} left`);
				if (this.mode === "plain") {
					this.stream.write(`${line}\n`);
					return;
				}
				cursorTo(this.stream, 0);
				clearLine(this.stream, 0);
				this.stream.write(final ? `${line}\n` : line);
				this.#drawn = !final;
			}
		}
	}

	/** Clears an unfinished live line, before an error message is printed. */
	abandon(): void {
		if (this.mode === "tty" && this.#drawn) {
			cursorTo(this.stream, 0);
			clearLine(this.stream, 0);
		}
	}
}

function formatDuration(seconds: number): string {
	const s = Math.ceil(seconds);
	if (s < 60) return `${s}s`;
	if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
	return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
