/** Conflicted copies with keep both / keep this one (stub: work package WP3 of docs/web-app-plan.md builds it). */

export function Conflicts() {
	return (
		<section>
			<h1>Conflicts</h1>
		</section>
	);
}
