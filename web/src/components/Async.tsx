/** Data a view loads once per key, with its error as a sentence and a placeholder while it loads. */
import { useEffect, useState } from "preact/hooks";
import { describeError, type ErrorContext } from "../messages";

export interface Loaded<T> {
	value: T | null;
	error: string | null;
}

/** Runs `load` when `key` changes; an answer that arrives after the key changed is dropped. */
export function useLoaded<T>(load: () => Promise<T>, key: string, context: ErrorContext = {}): Loaded<T> {
	const [state, setState] = useState<Loaded<T>>({ value: null, error: null });
	useEffect(() => {
		let live = true;
		setState({ value: null, error: null });
		load().then(
			(value) => live && setState({ value, error: null }),
			(err: unknown) => live && setState({ value: null, error: describeError(err, context) }),
		);
		return () => {
			live = false;
		};
	}, [key]);
	return state;
}

/** An error read out as soon as it appears. */
export function Alert({ text }: { text: string | null }) {
	if (text === null) return null;
	return (
		<p class="error" role="alert">
			{text}
		</p>
	);
}

/** The error, or "Loading…" until there is a value. */
export function Pending({ state, label = "Loading…" }: { state: Loaded<unknown>; label?: string }) {
	if (state.error !== null) return <Alert text={state.error} />;
	return (
		<p class="muted" aria-busy="true">
			{label}
		</p>
	);
}

/** A table's header row; the last column holds row actions and is named for screen readers only. */
export function Head({ columns, actions = false }: { columns: string[]; actions?: boolean }) {
	return (
		<thead>
			<tr>
				{columns.map((column) => (
					<th key={column} scope="col">
						{column}
					</th>
				))}
				{actions && (
					<th scope="col">
						<span class="visually-hidden">Actions</span>
					</th>
				)}
			</tr>
		</thead>
	);
}
