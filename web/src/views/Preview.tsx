/**
 * Preview of a file in a dialog. User content never runs in the app's
 * origin: images load through an inline signed URL into `<img>`, text is the
 * first 256 KB rendered as a text node (never as HTML), and PDFs load in an
 * `<iframe sandbox>` of a URL that is itself served with `CSP: sandbox`.
 * Anything else shows its name, size and a Download button.
 */
import type { JSX } from "preact";
import { call, type Node } from "../api";
import { Pending, useLoaded } from "../components/Async";
import { Dialog } from "../components/Dialog";
import { downloadNode, downloadUrl } from "../download";
import { formatBytes, formatTime } from "../format";

/** Text larger than this shows its beginning only. */
const TEXT_BYTES = 256 * 1024;

const IMAGE = new Set(["png", "jpg", "jpeg", "gif", "webp", "avif", "bmp", "ico", "svg"]);
const TEXT = new Set([
	"txt",
	"md",
	"markdown",
	"csv",
	"tsv",
	"json",
	"log",
	"xml",
	"yaml",
	"yml",
	"toml",
	"ini",
	"conf",
	"html",
	"htm",
	"css",
	"js",
	"mjs",
	"ts",
	"tsx",
	"jsx",
	"py",
	"rb",
	"go",
	"rs",
	"java",
	"c",
	"h",
	"cpp",
	"sh",
	"sql",
]);

export type PreviewKind = "image" | "text" | "pdf" | "other";

export function previewKind(name: string): PreviewKind {
	const dot = name.lastIndexOf(".");
	const ext = dot <= 0 ? "" : name.slice(dot + 1).toLowerCase();
	if (IMAGE.has(ext)) return "image";
	if (TEXT.has(ext)) return "text";
	if (ext === "pdf") return "pdf";
	return "other";
}

export function Preview({ node, onClose }: { node: Node; onClose: () => void }) {
	const kind = previewKind(node.name);
	return (
		<Dialog title={node.name} onClose={onClose} wide>
			<div class="preview">
				{kind === "image" && <Inline node={node} render={(url) => <img src={url} alt={node.name} />} />}
				{kind === "pdf" && <Inline node={node} render={(url) => <Pdf url={url} name={node.name} />} />}
				{kind === "text" && <Text node={node} />}
				<p class="muted">
					{formatBytes(node.size)} · modified {formatTime(node.modified_at)}
				</p>
				<div class="actions">
					<button type="button" class="primary" onClick={() => void downloadNode(node)}>
						Download
					</button>
				</div>
			</div>
		</Dialog>
	);
}

/** Fetches an inline signed URL (valid a minute: enough for the element to start loading) and renders with it. */
function Inline({ node, render }: { node: Node; render: (url: string) => JSX.Element }) {
	const url = useLoaded(() => downloadUrl(node, { inline: true }), `${node.id}:${node.version_id}`, { name: node.name });
	return url.value === null ? <Pending state={url} label="Loading preview…" /> : render(url.value);
}

/**
 * The PDF in a sandboxed frame. Chromium's PDF viewer may refuse to run in a
 * sandboxed document (the frame and the URL's own `CSP: sandbox`); the
 * sandbox is the point, so instead of loosening it the viewer also offers
 * the same URL in a new tab, where the browser's own viewer opens it.
 */
function Pdf({ url, name }: { url: string; name: string }) {
	return (
		<>
			<iframe src={url} sandbox="" title={`Preview of ${name}`} class="pdf" />
			<p class="muted">
				If the PDF does not show here,{" "}
				<a href={url} target="_blank" rel="noopener noreferrer">
					open it in a new tab
				</a>
				.
			</p>
		</>
	);
}

function Text({ node }: { node: Node }) {
	const text = useLoaded(
		async () => {
			const res = await call("GET", `/v1/files/${encodeURIComponent(node.id)}/content`, {
				headers: { Range: `bytes=0-${TEXT_BYTES - 1}` },
			});
			const bytes = new Uint8Array(await res.arrayBuffer());
			// A multi-byte character cut at the end decodes as one replacement character, which is fine for a preview.
			return new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, TEXT_BYTES));
		},
		`${node.id}:${node.version_id}`,
		{ name: node.name },
	);
	if (text.value === null) return <Pending state={text} label="Loading preview…" />;
	return (
		<>
			<pre class="text-preview" tabIndex={0} aria-label={`Contents of ${node.name}`}>
				{text.value}
			</pre>
			{(node.size ?? 0) > TEXT_BYTES && <p class="muted">Showing the first 256 KB.</p>}
		</>
	);
}
