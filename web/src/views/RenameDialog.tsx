/** RenameDialog (stub: work package WP3 of docs/web-app-plan.md builds it). */
import type { Node } from "../api";
import { Dialog } from "../components/Dialog";

export function RenameDialog({ node, onClose }: { node: Node; onClose: () => void }) {
	void node;
	return (
		<Dialog title="RenameDialog" onClose={onClose}>
			<p>Not built yet.</p>
		</Dialog>
	);
}
