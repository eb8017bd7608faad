/** A dialog's last line: a refusal as a sentence (if any), Cancel, and the action (a submit button unless `onAct` is given). */
export function DialogActions({
	label,
	busy,
	error,
	onClose,
	onAct,
	danger,
}: {
	label: string;
	busy: boolean;
	error?: string | null;
	onClose: () => void;
	onAct?: () => void;
	danger?: boolean;
}) {
	return (
		<>
			{error != null && (
				<p id="dialog-error" class="error" role="alert">
					{error}
				</p>
			)}
			<div class="actions">
				<button type="button" onClick={onClose}>
					Cancel
				</button>
				<button type={onAct ? "button" : "submit"} class={danger ? "primary danger-fill" : "primary"} disabled={busy} onClick={onAct}>
					{label}
				</button>
			</div>
		</>
	);
}
