/** The trash: restore, delete forever, empty (stub: work package WP3 of docs/web-app-plan.md builds it). */

export function Trash() {
	return (
		<section>
			<h1>Trash</h1>
		</section>
	);
}
