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
import { canEdit, insideShare } from "../access";
import { dialog } from "../dialogs";
import { formatBytes, formatTime } from "../format";
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

export function openNode(node: Node): void {
	if (node.type === "folder") navigate({ view: "files", folderId: node.id });
	else dialog.value = { kind: "preview", node };
}

/** What the person may do in the open folder: a viewer only reads; inside someone else's share only the owner shares. */
interface Rights {
	edit: boolean;
	insideShare: boolean;
}

function menuItems(node: Node, rights: Rights): MenuItem[] {
	const items: MenuItem[] = [{ label: node.type === "folder" ? "Open" : "Preview", onSelect: () => openNode(node) }];
	if (node.type === "file") items.push({ label: "Download", onSelect: () => void downloadNode(node) });
	if (rights.edit)
		items.push(
			{ label: "Rename", onSelect: () => (dialog.value = { kind: "rename", node }) },
			{ label: "Move", onSelect: () => (dialog.value = { kind: "move", nodes: [node] }) },
		);
	// A mount's dialog shows its members and "Leave"; items inside a share are the owner's to share.
	if (!rights.insideShare) items.push({ label: "Share", onSelect: () => (dialog.value = { kind: "share", node }) });
	if (node.type === "file") items.push({ label: "Version history", onSelect: () => (dialog.value = { kind: "versions", node }) });
	if (rights.edit) items.push({ label: "Move to trash", danger: true, onSelect: () => void trashNode(node) });
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

	const path = open.crumbs.map((crumb) => crumb.id);
	const rights: Rights = {
		edit: canEdit({ id: open.node.id, ancestors: path.map((id) => ({ id })) }),
		insideShare: insideShare(path),
	};
	const crumbDrop = (crumb: Crumb): DropTarget => ({
		...dropInto(crumb.id, crumb.name, (over) => (dropTarget.value = over ? crumb.id : null)),
		...(dropTarget.value === crumb.id ? { class: "drop-over" } : {}),
	});

	return (
		<section
			class={desktopDrag.value ? "files desktop-drag" : "files"}
			aria-label="Files"
			onDragOver={(event) => {
				if (!event.dataTransfer?.types.includes("Files") || !rights.edit) return;
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
				if (!data?.types.includes("Files") || !rights.edit) return;
				event.preventDefault();
				startUploads(await itemsFromDataTransfer(data), open.node.id);
			}}
		>
			<div class="files-head">
				<Breadcrumbs crumbs={open.crumbs} dropProps={crumbDrop} />
				{rights.edit ? (
					<div class="toolbar" role="toolbar" aria-label="Folder actions">
						<button type="button" onClick={() => (dialog.value = { kind: "new-folder", parentId: open.node.id })}>
							New folder
						</button>
						<UploadButtons parentId={open.node.id} />
					</div>
				) : (
					<p class="muted read-only">View only: shared with you as a viewer.</p>
				)}
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
					draggable: rights.edit,
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
					...(node.type === "folder" && rights.edit
						? dropInto(node.id, node.name, (over) => (dropTarget.value = over ? node.id : null))
						: {}),
				})}
				onRowOpen={openNode}
				onRowKey={(event, node) => {
					if (!rights.edit && (event.key === "Delete" || event.key === "F2")) return;
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
							{node.type === "file" ? formatBytes(node.size) : "—"}
						</div>
						<div role="gridcell" class="c-date">
							{formatTime(node.modified_at)}
						</div>
						<div role="gridcell" class="c-actions">
							<RowMenu menuKey={node.id} label={`Actions for ${node.name}`} items={menuItems(node, rights)} tabbable={active} />
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
