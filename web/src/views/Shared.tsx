/** Shared with me, and what I share (stub: work package WP4 of docs/web-app-plan.md builds it). */

export function Shared() {
	return (
		<section>
			<h1>Shared with me</h1>
		</section>
	);
}
