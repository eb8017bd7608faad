/**
 * "Upload files" and "Upload folder" for the open folder: buttons that open
 * the browser's pickers (hidden inputs), so they look and read like every
 * other button; a picked folder keeps its tree (`webkitdirectory`).
 */
import { useRef } from "preact/hooks";
import { itemsFromInput } from "../upload/pick";
import { startUploads } from "../upload/queue";

export function UploadButtons({ parentId }: { parentId: string }) {
	const files = useRef<HTMLInputElement>(null);
	const folder = useRef<HTMLInputElement>(null);
	const picked = (event: Event) => {
		const input = event.currentTarget as HTMLInputElement;
		if (input.files && input.files.length > 0) startUploads(itemsFromInput(input.files), parentId);
		// The same file can be picked again later.
		input.value = "";
	};
	return (
		<span class="upload-buttons">
			<button type="button" onClick={() => files.current?.click()}>
				Upload files
			</button>
			<button type="button" onClick={() => folder.current?.click()}>
				Upload folder
			</button>
			<input ref={files} type="file" multiple hidden tabIndex={-1} aria-hidden="true" onChange={picked} />
			<input
				ref={(element) => {
					folder.current = element;
					if (element) element.webkitdirectory = true;
				}}
				type="file"
				hidden
				tabIndex={-1}
				aria-hidden="true"
				onChange={picked}
			/>
		</span>
	);
}
