/** A folder: breadcrumbs, sortable virtualised list, toolbar, drag and drop (stub: work package WP3 of docs/web-app-plan.md builds it). */
import { useEffect } from "preact/hooks";
export function Files({ folderId }: { folderId: string | null }) {
	useEffect(() => undefined, [folderId]);
	return (
		<section>
			<h1>My files</h1>
		</section>
	);
}
