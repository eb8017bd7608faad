/** ShareDialog (stub: work package WP4 of docs/web-app-plan.md builds it). */
import type { Node } from "../api";
import { Dialog } from "../components/Dialog";

export function ShareDialog({ node, onClose }: { node: Node; onClose: () => void }) {
	void node;
	return (
		<Dialog title="ShareDialog" onClose={onClose}>
			<p>Not built yet.</p>
		</Dialog>
	);
}
