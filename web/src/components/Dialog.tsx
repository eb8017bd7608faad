/**
 * A modal dialog on the native <dialog> element: showModal() gives focus
 * trapping, Escape to close and an inert page behind it, with no library.
 */
import type { ComponentChildren } from "preact";
import { useEffect, useRef } from "preact/hooks";

export function Dialog({
	title,
	onClose,
	children,
	wide,
}: {
	title: string;
	onClose: () => void;
	children: ComponentChildren;
	wide?: boolean;
}) {
	const ref = useRef<HTMLDialogElement>(null);
	useEffect(() => {
		const element = ref.current;
		if (element && !element.open) element.showModal();
		return () => element?.close();
	}, []);
	return (
		<dialog
			ref={ref}
			class={wide ? "dialog wide" : "dialog"}
			aria-labelledby="dialog-title"
			onClose={onClose}
			onCancel={(event) => {
				event.preventDefault();
				onClose();
			}}
		>
			<header>
				<h2 id="dialog-title">{title}</h2>
				<button type="button" class="icon" aria-label="Close" onClick={onClose}>
					×
				</button>
			</header>
			{children}
		</dialog>
	);
}
