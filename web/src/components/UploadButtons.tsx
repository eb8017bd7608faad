/** "Upload files" and "Upload folder" pickers for the open folder (stub: WP4 builds it on upload/queue.ts). */
export function UploadButtons({ parentId }: { parentId: string }) {
	void parentId;
	return null;
}
