/**
 * Uploads that can be resumed after a reload: each session's id and the file
 * it was for, kept in IndexedDB from the moment the session exists. A page
 * cannot reopen a file on its own (browsers give pages no file paths), so the person
 * picks it again; a file with the same name, size and modification time
 * continues the session, and only the blocks it still lacks are sent.
 */
import { signal } from "@preact/signals";

export interface Resumable {
	uploadId: string;
	/** The signed-in user the session belongs to: the browser's storage is shared by whoever signs in. */
	userId: string;
	name: string;
	size: number;
	lastModified: number;
	parentId: string;
	/** When the session was created; sessions expire after 24 hours (docs/api.md, "Upload sessions"). */
	expiresAt: string;
}

/** Unfinished uploads from earlier page loads, for the uploads panel to offer. */
export const resumable = signal<Resumable[]>([]);

const STORE = "uploads";
let opened: Promise<IDBDatabase> | null = null;

function database(): Promise<IDBDatabase> {
	opened ??= new Promise((resolve, reject) => {
		const request = indexedDB.open("drive-uploads", 1);
		request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: "uploadId" });
		request.onsuccess = () => resolve(request.result);
		request.onerror = () => reject(request.error ?? new Error("IndexedDB unavailable"));
	});
	return opened;
}

async function run<T>(mode: IDBTransactionMode, work: (store: IDBObjectStore) => IDBRequest<T>): Promise<T> {
	const db = await database();
	return new Promise((resolve, reject) => {
		const tx = db.transaction(STORE, mode);
		const request = work(tx.objectStore(STORE));
		tx.oncomplete = () => resolve(request.result);
		tx.onerror = () => reject(tx.error ?? new Error("IndexedDB write failed"));
	});
}

/** Records a session as soon as it exists; a failure only costs the resume, never the upload. */
export async function remember(record: Resumable): Promise<void> {
	await run("readwrite", (store) => store.put(record)).catch(() => undefined);
}

export async function forget(uploadId: string): Promise<void> {
	resumable.value = resumable.value.filter((r) => r.uploadId !== uploadId);
	await run("readwrite", (store) => store.delete(uploadId)).catch(() => undefined);
}

/**
 * Loads the records left by earlier page loads (minus those this page is
 * uploading) into {@link resumable}; expired sessions are dropped.
 */
export async function loadResumable(userId: string, running: ReadonlySet<string>): Promise<void> {
	let records: Resumable[];
	try {
		records = await run("readonly", (store) => store.getAll() as IDBRequest<Resumable[]>);
	} catch {
		return;
	}
	const now = Date.now();
	const live: Resumable[] = [];
	for (const record of records) {
		if (Date.parse(record.expiresAt) <= now) void forget(record.uploadId);
		else if (record.userId === userId && !running.has(record.uploadId)) live.push(record);
	}
	resumable.value = live;
}

/** Whether a picked file is the one a session was for. */
export function sameFile(record: Resumable, file: File): boolean {
	return file.name === record.name && file.size === record.size && file.lastModified === record.lastModified;
}
