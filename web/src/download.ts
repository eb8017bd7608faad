/**
 * Downloads through a short-lived signed URL (POST /v1/files/:id/download-url,
 * docs/decisions/0026-web-app.md): the browser streams the file to disk and
 * the page never holds it in memory.
 */
import { client, type Node } from "./api";
import { describeError } from "./messages";
import { notify } from "./toasts";

/** A URL for one version of a file, valid for a minute; `inline` for previews (`<img>`, `<iframe sandbox>`). */
export function downloadUrl(node: Node, options: { versionId?: string; inline?: boolean } = {}): Promise<string> {
	return client.downloadUrl(node.id, {
		disposition: options.inline ? "inline" : "attachment",
		...(options.versionId !== undefined ? { versionId: options.versionId } : {}),
	});
}

/** Saves a URL the browser can fetch by itself (same origin, no header needed) through a hidden `<a download>`. */
export function saveUrl(url: string, name: string): void {
	const anchor = document.createElement("a");
	anchor.href = url;
	anchor.download = name;
	anchor.hidden = true;
	document.body.append(anchor);
	anchor.click();
	anchor.remove();
}

/** Downloads a file (or one of its versions); a failure becomes a toast. */
export async function downloadNode(node: Node, versionId?: string): Promise<void> {
	try {
		saveUrl(await downloadUrl(node, versionId === undefined ? {} : { versionId }), node.name);
	} catch (err) {
		notify(describeError(err, { name: node.name }), "error");
	}
}
