/**
 * Files and folders from a drop (DataTransfer) or a picker, as upload items
 * with the folders they sit in under the target, so a dropped or picked
 * folder keeps its tree.
 */
import type { UploadItem } from "./queue";

/**
 * The items of a drop. Entries are taken before the first await: a
 * DataTransfer is emptied once the drop event's handler returns.
 */
export async function itemsFromDataTransfer(data: DataTransfer): Promise<UploadItem[]> {
	const entries: FileSystemEntry[] = [];
	for (const item of [...data.items]) {
		if (item.kind !== "file") continue;
		const entry = typeof item.webkitGetAsEntry === "function" ? item.webkitGetAsEntry() : null;
		if (entry === null) return [...data.files].map((file) => ({ file, relativeDir: "" }));
		entries.push(entry);
	}
	const items: UploadItem[] = [];
	for (const entry of entries) await walk(entry, "", items);
	return items;
}

/** The items of a file input; a folder picker (`webkitdirectory`) names each file's path from the picked folder. */
export function itemsFromInput(files: FileList | readonly File[]): UploadItem[] {
	return [...files].map((file) => {
		const path = file.webkitRelativePath;
		const cut = path.lastIndexOf("/");
		return { file, relativeDir: cut < 0 ? "" : path.slice(0, cut) };
	});
}

async function walk(entry: FileSystemEntry, dir: string, into: UploadItem[]): Promise<void> {
	if (isFile(entry)) {
		const file = await new Promise<File>((resolve, reject) => entry.file(resolve, reject));
		into.push({ file, relativeDir: dir });
		return;
	}
	if (!isDirectory(entry)) return;
	const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
	const reader = entry.createReader();
	// readEntries answers in pages (100 at a time in Chromium) until an empty one.
	for (;;) {
		const page = await new Promise<FileSystemEntry[]>((resolve, reject) => reader.readEntries(resolve, reject));
		if (page.length === 0) return;
		for (const child of page) await walk(child, path, into);
	}
}

function isFile(entry: FileSystemEntry): entry is FileSystemFileEntry {
	return entry.isFile;
}

function isDirectory(entry: FileSystemEntry): entry is FileSystemDirectoryEntry {
	return entry.isDirectory;
}
