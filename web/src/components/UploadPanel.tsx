/** The uploads in progress: per-file and total progress, cancel (stub: WP4 builds it from upload/queue.ts). */
import { uploads } from "../upload/queue";

export function UploadPanel() {
	if (uploads.value.length === 0) return null;
	return <aside class="uploads" aria-label="Uploads" />;
}
