/** Rename a file or folder; a refused name (taken, invalid) is said in the dialog, which stays open. */
import * as api from "../api";
import type { Node } from "../api";
import { Dialog } from "../components/Dialog";
import { NameForm } from "../components/NameForm";
import { place } from "../state/folder";

export function RenameDialog({ node, onClose }: { node: Node; onClose: () => void }) {
	return (
		<Dialog title={`Rename “${node.name}”`} onClose={onClose}>
			<NameForm
				label="New name"
				initial={node.name}
				action="Rename"
				onClose={onClose}
				onSubmit={async (name) => {
					if (name === node.name) return;
					place(await api.rename(node.id, name));
				}}
			/>
		</Dialog>
	);
}
