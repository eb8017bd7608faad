/** A dialog's one-field name form: the field, the refusal as a sentence, Cancel and the action. */
import { useSignal } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { describeError } from "../messages";
import { DialogActions } from "./DialogActions";

export function NameForm({
	label,
	initial,
	action,
	onSubmit,
	onClose,
}: {
	label: string;
	initial: string;
	action: string;
	/** Does the work; a throw is shown under the field and the dialog stays open. */
	onSubmit: (name: string) => Promise<void>;
	onClose: () => void;
}) {
	const error = useSignal<string | null>(null);
	const busy = useSignal(false);
	const input = useRef<HTMLInputElement>(null);
	useEffect(() => {
		const field = input.current;
		if (!field) return;
		field.focus();
		// Select the name without its extension, so typing keeps ".pdf".
		const dot = initial.lastIndexOf(".");
		field.setSelectionRange(0, dot > 0 ? dot : initial.length);
	}, []);
	return (
		<form
			onSubmit={async (event) => {
				event.preventDefault();
				const name = input.current?.value.trim() ?? "";
				if (name === "") return;
				busy.value = true;
				error.value = null;
				try {
					await onSubmit(name);
					onClose();
				} catch (err) {
					error.value = describeError(err, { name });
				} finally {
					busy.value = false;
				}
			}}
		>
			<label>
				{label}
				<input
					ref={input}
					type="text"
					name="name"
					defaultValue={initial}
					required
					maxLength={255}
					autoComplete="off"
					aria-invalid={error.value !== null}
					aria-describedby={error.value !== null ? "dialog-error" : undefined}
				/>
			</label>
			<DialogActions label={action} busy={busy.value} error={error.value} onClose={onClose} />
		</form>
	);
}
