/**
 * A folder: breadcrumbs, the toolbar, and its children in a sortable,
 * windowed grid. Rows open on Enter or double-click, trash on Delete, rename
 * on F2, and drag onto a folder row or a breadcrumb to move; files dropped
 * from the desktop upload into the folder.
 */
import { useSignal } from "@preact/signals";
import { useEffect } from "preact/hooks";
import type { Node } from "../api";
import { Breadcrumbs, type DropTarget } from "../components/Breadcrumbs";
import { Icon } from "../components/Icon";
import { openMenu, RowMenu, type MenuItem } from "../components/RowMenu";
import { UploadButtons } from "../components/UploadButtons";
import { VirtualList } from "../components/VirtualList";
import { dialog } from "../dialogs";
import { downloadNode } from "../download";
import { hrefOf, navigate } from "../router";
import {
	folder,
	loadError,
	moveNode,
	openFolder,
	sort,
	sortedItems,
	toggleSort,
	trashNode,
	type Crumb,
	type SortKey,
} from "../state/folder";
import { itemsFromDataTransfer } from "../upload/pick";
import { startUploads } from "../upload/queue";

const ROW_HEIGHT = 44;
/** The drag type of a row being moved; desktop files come as "Files". */
const NODE_TYPE = "application/x-drive-node";

let dragged: Node | null = null;

const sizeFormat = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });
export function formatSize(bytes: number | null): string {
	if (bytes === null) return "—";
	const units = ["B", "KB", "MB", "GB", "TB"];
	let value = bytes;
	let unit = 0;
	while (value >= 1000 && unit < units.length - 1) {
		value /= 1000;
		unit++;
	}
	return `${sizeFormat.format(value)} ${units[unit] ?? ""}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
export function formatDate(iso: string): string {
	return dateFormat.format(new Date(iso));
}

export function openNode(node: Node): void {
	if (node.type === "folder") navigate({ view: "files", folderId: node.id });
	else dialog.value = { kind: "preview", node };
}

function menuItems(node: Node): MenuItem[] {
	const items: MenuItem[] = [{ label: node.type === "folder" ? "Open" : "Preview", onSelect: () => openNode(node) }];
	if (node.type === "file") items.push({ label: "Download", onSelect: () => void downloadNode(node) });
	items.push(
		{ label: "Rename", onSelect: () => (dialog.value = { kind: "rename", node }) },
		{ label: "Move", onSelect: () => (dialog.value = { kind: "move", nodes: [node] }) },
		{ label: "Share", onSelect: () => (dialog.value = { kind: "share", node }) },
	);
	if (node.type === "file") items.push({ label: "Version history", onSelect: () => (dialog.value = { kind: "versions", node }) });
	items.push({ label: "Move to trash", danger: true, onSelect: () => void trashNode(node) });
	return items;
}

/** Drop target props: a row being dragged over `target` may land in it. */
function dropInto(targetId: string, targetName: string, setOver: (over: boolean) => void): DropTarget {
	return {
		onDragOver: (event: DragEvent) => {
			if (!event.dataTransfer?.types.includes(NODE_TYPE) || dragged === null || dragged.id === targetId) return;
			event.preventDefault();
			event.stopPropagation();
			event.dataTransfer.dropEffect = "move";
			setOver(true);
		},
		onDragLeave: () => setOver(false),
		onDrop: (event: DragEvent) => {
			setOver(false);
			if (!event.dataTransfer?.types.includes(NODE_TYPE) || dragged === null) return;
			event.preventDefault();
			event.stopPropagation();
			const node = dragged;
			dragged = null;
			void moveNode(node, targetId, targetName);
		},
	};
}

function SortHeader({ label, sortKey, className }: { label: string; sortKey: SortKey; className: string }) {
	const current = sort.value;
	const active = current.key === sortKey;
	return (
		<div role="columnheader" class={className} aria-sort={active ? (current.dir === "asc" ? "ascending" : "descending") : "none"}>
			<button type="button" class="sort" onClick={() => toggleSort(sortKey)}>
				{label}
				<span aria-hidden="true">{active ? (current.dir === "asc" ? " ▲" : " ▼") : ""}</span>
			</button>
		</div>
	);
}

export function Files({ folderId }: { folderId: string | null }) {
	const dropTarget = useSignal<string | null>(null);
	const desktopDrag = useSignal(false);
	useEffect(() => {
		void openFolder(folderId);
		openMenu.value = null;
	}, [folderId]);

	const open = folder.value;
	if (loadError.value !== null)
		return (
			<section class="files">
				<h1>Can't open this folder</h1>
				<p role="alert">{loadError.value}</p>
				<p>
					<a href="/">Go to My files</a>
				</p>
			</section>
		);
	if (open === null || (folderId !== null && open.node.id !== folderId))
		return (
			<p class="loading" aria-busy="true">
				Loading…
			</p>
		);

	const crumbDrop = (crumb: Crumb): DropTarget => ({
		...dropInto(crumb.id, crumb.name, (over) => (dropTarget.value = over ? crumb.id : null)),
		...(dropTarget.value === crumb.id ? { class: "drop-over" } : {}),
	});

	return (
		<section
			class={desktopDrag.value ? "files desktop-drag" : "files"}
			aria-label="Files"
			onDragOver={(event) => {
				if (!event.dataTransfer?.types.includes("Files")) return;
				event.preventDefault();
				event.dataTransfer.dropEffect = "copy";
				desktopDrag.value = true;
			}}
			onDragLeave={(event) => {
				if (event.currentTarget === event.target) desktopDrag.value = false;
			}}
			onDrop={async (event) => {
				desktopDrag.value = false;
				const data = event.dataTransfer;
				if (!data?.types.includes("Files")) return;
				event.preventDefault();
				startUploads(await itemsFromDataTransfer(data), open.node.id);
			}}
		>
			<div class="files-head">
				<Breadcrumbs crumbs={open.crumbs} dropProps={crumbDrop} />
				<div class="toolbar" role="toolbar" aria-label="Folder actions">
					<button type="button" onClick={() => (dialog.value = { kind: "new-folder", parentId: open.node.id })}>
						New folder
					</button>
					<UploadButtons parentId={open.node.id} />
				</div>
			</div>
			<VirtualList
				items={sortedItems.value}
				rowHeight={ROW_HEIGHT}
				label={`Contents of ${open.crumbs[open.crumbs.length - 1]?.name ?? "folder"}`}
				keyOf={(node) => node.id}
				header={
					<>
						<SortHeader label="Name" sortKey="name" className="c-name" />
						<SortHeader label="Size" sortKey="size" className="c-size" />
						<SortHeader label="Modified" sortKey="modified" className="c-date" />
						<div role="columnheader" class="c-actions">
							<span class="visually-hidden">Actions</span>
						</div>
					</>
				}
				empty={
					<div class="empty">
						<p>
							<strong>This folder is empty.</strong>
						</p>
						<p class="muted">Drop files here, or use “New folder” and the upload buttons above.</p>
					</div>
				}
				rowProps={(node) => ({
					draggable: true,
					class: [node.conflict_of !== null ? "conflicted" : "", dropTarget.value === node.id ? "drop-over" : ""].join(" "),
					onDragStart: (event: DragEvent) => {
						dragged = node;
						event.dataTransfer?.setData(NODE_TYPE, node.id);
						event.dataTransfer?.setData("text/plain", node.name);
						if (event.dataTransfer) event.dataTransfer.effectAllowed = "move";
					},
					onDragEnd: () => {
						dragged = null;
						dropTarget.value = null;
					},
					...(node.type === "folder" ? dropInto(node.id, node.name, (over) => (dropTarget.value = over ? node.id : null)) : {}),
				})}
				onRowOpen={openNode}
				onRowKey={(event, node) => {
					if (event.key === "Delete") {
						event.preventDefault();
						void trashNode(node);
					} else if (event.key === "F2") {
						event.preventDefault();
						dialog.value = { kind: "rename", node };
					} else if (event.key === "ContextMenu" || (event.shiftKey && event.key === "F10")) {
						event.preventDefault();
						openMenu.value = node.id;
					}
				}}
				renderRow={(node, _index, active) => (
					<>
						<div role="gridcell" class="c-name">
							<Icon kind={node.mount ? "shared" : node.type} />
							{node.type === "folder" ? (
								<a href={hrefOf({ view: "files", folderId: node.id })} tabIndex={-1} class="name">
									{node.name}
								</a>
							) : (
								<button type="button" class="link name" tabIndex={-1} onClick={() => openNode(node)}>
									{node.name}
								</button>
							)}
							{node.mount && <span class="badge">Shared folder</span>}
							{node.conflict_of !== null && (
								<a class="badge warn" href="/conflicts" tabIndex={-1}>
									Conflicted copy
								</a>
							)}
						</div>
						<div role="gridcell" class="c-size">
							{node.type === "file" ? formatSize(node.size) : "—"}
						</div>
						<div role="gridcell" class="c-date">
							{formatDate(node.modified_at)}
						</div>
						<div role="gridcell" class="c-actions">
							<RowMenu menuKey={node.id} label={`Actions for ${node.name}`} items={menuItems(node)} tabbable={active} />
						</div>
					</>
				)}
			/>
			{!open.complete && (
				<p class="muted loading-more" aria-live="polite">
					Loading {open.items.length.toLocaleString()} items so far…
				</p>
			)}
		</section>
	);
}
