/**
 * A windowed grid: rows of a fixed height, of which only those in view (and
 * a few either side) are in the DOM, so 10,000 children cost as much as 30.
 * ARIA grid semantics with `aria-rowcount`/`aria-rowindex` tell a screen
 * reader the real size; one row is tabbable at a time (roving tabindex), and
 * arrow keys, Page Up/Down, Home and End move through the whole list.
 * https://www.w3.org/WAI/ARIA/apg/patterns/grid/
 */
import type { ComponentChildren, HTMLAttributes } from "preact";
import { useLayoutEffect, useRef, useState } from "preact/hooks";

const OVERSCAN = 8;

export interface VirtualListProps<T> {
	items: T[];
	rowHeight: number;
	label: string;
	keyOf: (item: T) => string;
	/** The header row's cells (role="columnheader"). */
	header: ComponentChildren;
	/** A row's cells (role="gridcell"); `active` is the row holding the tab stop. */
	renderRow: (item: T, index: number, active: boolean) => ComponentChildren;
	/** Extra attributes of a row element (drag and drop, a class). */
	rowProps?: (item: T) => Omit<HTMLAttributes<HTMLDivElement>, "ref">;
	/** Keys other than movement, on a focused row (Enter, Delete, F2…). */
	onRowKey?: (event: KeyboardEvent, item: T) => void;
	onRowOpen?: (item: T) => void;
	/** Shown under the header when there are no items. */
	empty?: ComponentChildren;
}

export function VirtualList<T>(props: VirtualListProps<T>) {
	const { items, rowHeight } = props;
	const scroller = useRef<HTMLDivElement>(null);
	const [scrollTop, setScrollTop] = useState(0);
	const [viewport, setViewport] = useState(600);
	const [active, setActive] = useState(0);
	const focusWanted = useRef(false);

	useLayoutEffect(() => {
		const element = scroller.current;
		if (!element) return;
		const observer = new ResizeObserver(() => setViewport(element.clientHeight));
		observer.observe(element);
		setViewport(element.clientHeight);
		return () => observer.disconnect();
	}, []);

	const count = items.length;
	const current = Math.min(active, Math.max(0, count - 1));
	const first = Math.max(0, Math.floor(scrollTop / rowHeight) - OVERSCAN);
	const last = Math.min(count, Math.ceil((scrollTop + viewport) / rowHeight) + OVERSCAN);

	// A layout effect, so focus lands on the row in the same task that renders
	// it: a key pressed next acts on the row the user just moved to.
	useLayoutEffect(() => {
		if (!focusWanted.current) return;
		focusWanted.current = false;
		scroller.current?.querySelector<HTMLElement>(`[data-index="${current}"]`)?.focus();
	});

	function moveTo(index: number): void {
		const target = Math.max(0, Math.min(count - 1, index));
		const element = scroller.current;
		if (element) {
			const top = target * rowHeight;
			if (top < element.scrollTop) element.scrollTop = top;
			else if (top + rowHeight > element.scrollTop + element.clientHeight) element.scrollTop = top + rowHeight - element.clientHeight;
			setScrollTop(element.scrollTop);
		}
		focusWanted.current = true;
		setActive(target);
	}

	function onKeyDown(event: KeyboardEvent, item: T, index: number): void {
		const page = Math.max(1, Math.floor(viewport / rowHeight) - 1);
		const moves: Record<string, number> = {
			ArrowDown: index + 1,
			ArrowUp: index - 1,
			PageDown: index + page,
			PageUp: index - page,
			Home: 0,
			End: count - 1,
		};
		const to = moves[event.key];
		if (to !== undefined) {
			event.preventDefault();
			moveTo(to);
			return;
		}
		if (event.target !== event.currentTarget) return;
		if (event.key === "Enter") {
			event.preventDefault();
			props.onRowOpen?.(item);
		} else props.onRowKey?.(event, item);
	}

	const rows: ComponentChildren[] = [];
	for (let index = first; index < last; index++) {
		const item = items[index] as T;
		const extra = props.rowProps?.(item) ?? {};
		rows.push(
			<div
				{...extra}
				key={props.keyOf(item)}
				role="row"
				class={`vrow ${String(extra.class ?? "")}`}
				aria-rowindex={index + 2}
				data-index={index}
				tabIndex={index === current ? 0 : -1}
				style={{ top: `${index * rowHeight}px`, height: `${rowHeight}px` }}
				onFocus={(event) => {
					if (event.target === event.currentTarget && index !== active) setActive(index);
				}}
				onKeyDown={(event) => onKeyDown(event, item, index)}
				onDblClick={() => props.onRowOpen?.(item)}
			>
				{props.renderRow(item, index, index === current)}
			</div>,
		);
	}

	return (
		<div role="grid" class="vlist" aria-label={props.label} aria-rowcount={count + 1}>
			<div role="rowgroup" class="vhead">
				<div role="row" class="vrow head" aria-rowindex={1}>
					{props.header}
				</div>
			</div>
			<div class="vscroll" ref={scroller} onScroll={(event) => setScrollTop(event.currentTarget.scrollTop)}>
				{count === 0 ? (
					props.empty
				) : (
					<div role="rowgroup" class="vspace" style={{ height: `${count * rowHeight}px` }}>
						{rows}
					</div>
				)}
			</div>
		</div>
	);
}
