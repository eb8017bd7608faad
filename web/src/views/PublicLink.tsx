/** A public link opened by anyone: password, folder listing, download (stub: work package WP4 of docs/web-app-plan.md builds it). */

export function PublicLink({ token }: { token: string }) {
	void token;
	return (
		<section>
			<h1>Shared link</h1>
		</section>
	);
}
