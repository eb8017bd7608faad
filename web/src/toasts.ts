/** Short messages at the bottom of the screen, read out by screen readers (a live region renders them). */
import { signal } from "@preact/signals";

export interface Toast {
	id: number;
	text: string;
	tone: "info" | "error";
}

export const toasts = signal<Toast[]>([]);
let next = 1;
const MAX_SHOWN = 3;

export function notify(text: string, tone: Toast["tone"] = "info"): void {
	const toast = { id: next++, text, tone };
	// The newest few: a burst of operations must not bury the page under messages.
	toasts.value = [...toasts.value, toast].slice(-MAX_SHOWN);
	setTimeout(() => dismiss(toast.id), tone === "error" ? 8000 : 4000);
}

export function dismiss(id: number): void {
	toasts.value = toasts.value.filter((t) => t.id !== id);
}
