/** Files and folders from a drop (DataTransfer) or a picker, as upload items with their relative folders (stub: WP4 builds it). */
import type { UploadItem } from "./queue";

export async function itemsFromDataTransfer(data: DataTransfer): Promise<UploadItem[]> {
	return [...data.files].map((file) => ({ file, relativeDir: "" }));
}
