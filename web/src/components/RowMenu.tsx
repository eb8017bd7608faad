/**
 * A row's actions: a menu button and its menu, placed with fixed coordinates
 * so a scrolling list never clips it. One menu is open at a time (the
 * `openMenu` signal also lets a row's keyboard shortcut open it). Keys as in
 * https://www.w3.org/WAI/ARIA/apg/patterns/menu-button/
 */
import { signal } from "@preact/signals";
import { useLayoutEffect, useRef } from "preact/hooks";

export interface MenuItem {
	label: string;
	onSelect: () => void;
	danger?: boolean;
}

/** The key of the row whose menu is open. */
export const openMenu = signal<string | null>(null);

const MENU_HEIGHT = 300;

export function RowMenu({ menuKey, label, items, tabbable }: { menuKey: string; label: string; items: MenuItem[]; tabbable: boolean }) {
	const button = useRef<HTMLButtonElement>(null);
	const menu = useRef<HTMLDivElement>(null);
	const open = openMenu.value === menuKey;

	// A layout effect, so the first item has focus before the menu is painted:
	// a key pressed the moment the menu shows reaches the menu, not the button.
	useLayoutEffect(() => {
		if (!open) return;
		menu.current?.querySelector<HTMLElement>("[role=menuitem]")?.focus();
		const close = (event: Event) => {
			if (event.target instanceof Node && (menu.current?.contains(event.target) || button.current?.contains(event.target))) return;
			openMenu.value = null;
		};
		// Escape closes an open menu wherever focus is: in the menu, on its
		// button or elsewhere. Captured, so it comes before the menu's own keys.
		const escape = (event: KeyboardEvent) => {
			if (event.key !== "Escape") return;
			event.preventDefault();
			closeAndFocus();
		};
		document.addEventListener("pointerdown", close, true);
		document.addEventListener("scroll", close, true);
		document.addEventListener("keydown", escape, true);
		return () => {
			document.removeEventListener("pointerdown", close, true);
			document.removeEventListener("scroll", close, true);
			document.removeEventListener("keydown", escape, true);
		};
	}, [open]);

	function closeAndFocus(): void {
		openMenu.value = null;
		button.current?.focus();
	}

	function onMenuKey(event: KeyboardEvent): void {
		const entries = [...(menu.current?.querySelectorAll<HTMLElement>("[role=menuitem]") ?? [])];
		const at = entries.indexOf(document.activeElement as HTMLElement);
		const step: Record<string, number> = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: entries.length - 1 };
		event.stopPropagation();
		if (step[event.key] !== undefined) {
			event.preventDefault();
			entries[((step[event.key] as number) + entries.length) % entries.length]?.focus();
		} else if (event.key === "Tab") openMenu.value = null;
	}

	let position: Record<string, string> = {};
	if (open && button.current) {
		const rect = button.current.getBoundingClientRect();
		const right = `${Math.max(8, window.innerWidth - rect.right)}px`;
		position =
			rect.bottom + MENU_HEIGHT > window.innerHeight && rect.top > MENU_HEIGHT
				? { right, bottom: `${window.innerHeight - rect.top}px` }
				: { right, top: `${rect.bottom}px` };
	}

	return (
		<>
			<button
				ref={button}
				type="button"
				class="icon menu-button"
				aria-label={label}
				aria-haspopup="menu"
				aria-expanded={open}
				tabIndex={tabbable ? 0 : -1}
				onClick={(event) => {
					event.stopPropagation();
					openMenu.value = open ? null : menuKey;
				}}
				onKeyDown={(event) => {
					if (event.key === "ArrowDown") {
						event.preventDefault();
						event.stopPropagation();
						openMenu.value = menuKey;
					}
				}}
			>
				⋯
			</button>
			{open && (
				<div ref={menu} role="menu" class="menu" aria-label={label} style={position} onKeyDown={onMenuKey}>
					{items.map((item) => (
						<button
							key={item.label}
							type="button"
							role="menuitem"
							tabIndex={-1}
							class={item.danger ? "danger" : undefined}
							onClick={(event) => {
								event.stopPropagation();
								openMenu.value = null;
								item.onSelect();
							}}
						>
							{item.label}
						</button>
					))}
				</div>
			)}
		</>
	);
}
