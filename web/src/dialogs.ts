/**
 * Which dialog is open. Views open one by setting this signal; the shell
 * (app.tsx) renders it, so a row's menu never has to know how a dialog is
 * built, and one dialog at a time is a rule of the type.
 */
import { signal } from "@preact/signals";
import type { Node } from "./api";

export type OpenDialog =
	| { kind: "rename"; node: Node }
	| { kind: "move"; nodes: Node[] }
	| { kind: "new-folder"; parentId: string }
	| { kind: "share"; node: Node }
	| { kind: "versions"; node: Node }
	| { kind: "preview"; node: Node }
	| { kind: "account" };

export const dialog = signal<OpenDialog | null>(null);

export function closeDialog(): void {
	dialog.value = null;
}
