/**
 * The upload queue (stub: WP4 builds it): one job per file through
 * src/client's uploadFile, each with its own AbortController and progress,
 * resumable after a reload (upload/resume.ts).
 */
import { signal } from "@preact/signals";

/** A file picked or dropped, with the folder path under the drop target ("" for a plain file). */
export interface UploadItem {
	file: File;
	/** Folders between the target and the file, e.g. "Photos/2026". */
	relativeDir: string;
}

export interface UploadJob {
	id: string;
	name: string;
	size: number;
	parentId: string;
	bytesDone: number;
	state: "queued" | "hashing" | "uploading" | "committing" | "done" | "failed" | "cancelled";
	error?: string;
	cancel: () => void;
}

export const uploads = signal<UploadJob[]>([]);

/** Queues files (from a picker or a drop) for upload into `parentId`, creating the folders their relativeDir names. */
export function startUploads(items: UploadItem[], parentId: string): void {
	void items;
	void parentId;
}
