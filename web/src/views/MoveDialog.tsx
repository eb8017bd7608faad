/** MoveDialog (stub: work package WP3 of docs/web-app-plan.md builds it). */
import type { Node } from "../api";
import { Dialog } from "../components/Dialog";

export function MoveDialog({ nodes, onClose }: { nodes: Node[]; onClose: () => void }) {
	void nodes;
	return (
		<Dialog title="MoveDialog" onClose={onClose}>
			<p>Not built yet.</p>
		</Dialog>
	);
}
