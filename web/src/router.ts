/**
 * Paths ⇄ views. The app has few pages, so a signal holding the parsed path
 * and `history.pushState` do what a router library would.
 */
import { signal } from "@preact/signals";

export type Route =
	| { view: "files"; folderId: string | null }
	| { view: "trash" }
	| { view: "conflicts" }
	| { view: "shared" }
	| { view: "link"; token: string }
	| { view: "missing" };

export function parse(path: string): Route {
	const parts = path.split("/").filter((p) => p !== "");
	const [first, second] = parts.map(decodeURIComponent);
	if (parts.length === 0) return { view: "files", folderId: null };
	if (first === "f" && second !== undefined && parts.length === 2) return { view: "files", folderId: second };
	if (first === "trash" && parts.length === 1) return { view: "trash" };
	if (first === "conflicts" && parts.length === 1) return { view: "conflicts" };
	if (first === "shared" && parts.length === 1) return { view: "shared" };
	if (first === "s" && second !== undefined && parts.length === 2) return { view: "link", token: second };
	return { view: "missing" };
}

export const route = signal<Route>(parse(location.pathname));

export function hrefOf(target: Route): string {
	switch (target.view) {
		case "files":
			return target.folderId === null ? "/" : `/f/${encodeURIComponent(target.folderId)}`;
		case "link":
			return `/s/${encodeURIComponent(target.token)}`;
		case "missing":
			return "/";
		default:
			return `/${target.view}`;
	}
}

export function navigate(target: Route | string, replace = false): void {
	const href = typeof target === "string" ? target : hrefOf(target);
	if (replace) history.replaceState(null, "", href);
	else if (href !== location.pathname) history.pushState(null, "", href);
	route.value = parse(location.pathname);
}

addEventListener("popstate", () => {
	route.value = parse(location.pathname);
});

/** Same-origin links navigate in place; modified clicks (new tab, download) keep the browser's behaviour. */
export function onLinkClick(event: MouseEvent): void {
	const anchor = (event.target as Element | null)?.closest("a");
	if (!anchor || anchor.target !== "" || anchor.hasAttribute("download")) return;
	if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
	const url = new URL(anchor.href);
	if (url.origin !== location.origin || url.pathname.startsWith("/v1/")) return;
	event.preventDefault();
	navigate(url.pathname);
}
