/** NewFolderDialog (stub: work package WP3 of docs/web-app-plan.md builds it). */
import { Dialog } from "../components/Dialog";

export function NewFolderDialog({ parentId, onClose }: { parentId: string; onClose: () => void }) {
	void parentId;
	return (
		<Dialog title="NewFolderDialog" onClose={onClose}>
			<p>Not built yet.</p>
		</Dialog>
	);
}
