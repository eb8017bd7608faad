/** A yes/no question in a modal dialog, for what cannot be undone (delete forever, empty trash). */
import { useSignal } from "@preact/signals";
import { Dialog } from "./Dialog";
import { DialogActions } from "./DialogActions";

export function Confirm({
	title,
	text,
	confirmLabel,
	onConfirm,
	onClose,
}: {
	title: string;
	text: string;
	confirmLabel: string;
	onConfirm: () => Promise<void>;
	onClose: () => void;
}) {
	const busy = useSignal(false);
	return (
		<Dialog title={title} onClose={onClose}>
			<form
				method="dialog"
				onSubmit={async (event) => {
					event.preventDefault();
					busy.value = true;
					try {
						await onConfirm();
					} finally {
						busy.value = false;
						onClose();
					}
				}}
			>
				<p>{text}</p>
				<DialogActions label={confirmLabel} busy={busy.value} onClose={onClose} danger />
			</form>
		</Dialog>
	);
}
