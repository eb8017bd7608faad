/**
 * Downloads through a short-lived signed URL (POST /v1/files/:id/download-url):
 * the browser streams the file to disk and the page never holds it in memory
 * (stub: WP4 builds it).
 */
import type { Node } from "./api";

export async function downloadNode(node: Node, versionId?: string): Promise<void> {
	void node;
	void versionId;
}
