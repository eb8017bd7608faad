/** Where the open folder is, from "My files" down; each folder above it is a link and a drop target for moves. */
import { hrefOf } from "../router";
import type { Crumb } from "../state/folder";

/** What makes an element a drop target for a dragged row. */
export interface DropTarget {
	onDragOver: (event: DragEvent) => void;
	onDragLeave: () => void;
	onDrop: (event: DragEvent) => void;
	class?: string;
}

export function Breadcrumbs({ crumbs, dropProps }: { crumbs: Crumb[]; dropProps?: (crumb: Crumb) => DropTarget }) {
	return (
		<nav aria-label="Breadcrumbs" class="crumbs">
			<ol>
				{crumbs.map((crumb, i) =>
					i === crumbs.length - 1 ? (
						<li key={crumb.id}>
							<h1 aria-current="page">{crumb.name}</h1>
						</li>
					) : (
						<li key={crumb.id}>
							<a href={hrefOf({ view: "files", folderId: crumb.root ? null : crumb.id })} {...(dropProps?.(crumb) ?? {})}>
								{crumb.name}
							</a>
						</li>
					),
				)}
			</ol>
		</nav>
	);
}
