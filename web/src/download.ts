/**
 * Downloads through a short-lived signed URL (POST /v1/files/:id/download-url,
 * docs/decisions/0026-web-app.md): the browser streams the file to disk and
 * the page never holds it in memory.
 */
import { callJson, type Node } from "./api";
import { describeError } from "./messages";
import { notify } from "./toasts";

/** A URL for one version of a file, valid for a minute; `inline` for previews (`<img>`, `<iframe sandbox>`). */
export async function downloadUrl(node: Node, options: { versionId?: string; inline?: boolean } = {}): Promise<string> {
	const body: { version_id?: string; disposition: "attachment" | "inline" } = { disposition: options.inline ? "inline" : "attachment" };
	if (options.versionId !== undefined) body.version_id = options.versionId;
	const answer = await callJson<{ url: string; expires_at: string }>("POST", `/v1/files/${encodeURIComponent(node.id)}/download-url`, {
		json: body,
	});
	return answer.url;
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
