/** Create a folder in the open folder. */
import * as api from "../api";
import { Dialog } from "../components/Dialog";
import { NameForm } from "../components/NameForm";
import { place } from "../state/folder";

export function NewFolderDialog({ parentId, onClose }: { parentId: string; onClose: () => void }) {
	return (
		<Dialog title="New folder" onClose={onClose}>
			<NameForm
				label="Folder name"
				initial="Untitled folder"
				action="Create"
				onClose={onClose}
				onSubmit={async (name) => {
					place(await api.createFolder(parentId, name));
				}}
			/>
		</Dialog>
	);
}
