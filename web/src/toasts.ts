/** Short messages at the bottom of the screen, read out by screen readers (a live region renders them). */
import { signal } from "@preact/signals";

export interface Toast {
	id: number;
	text: string;
	tone: "info" | "error";
}

export const toasts = signal<Toast[]>([]);
let next = 1;

export function notify(text: string, tone: Toast["tone"] = "info"): void {
	const toast = { id: next++, text, tone };
	toasts.value = [...toasts.value, toast];
	setTimeout(() => dismiss(toast.id), tone === "error" ? 8000 : 4000);
}

export function dismiss(id: number): void {
	toasts.value = toasts.value.filter((t) => t.id !== id);
}
