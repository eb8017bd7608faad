/**
 * The app's one way to the API: src/client's DriveClient (retries, backoff,
 * the error envelope as DriveApiError) with the in-memory access token, and
 * typed wrappers for the routes the pages use. The types are the server's
 * own zod schemas, imported as types only, so no schema code is shipped.
 */
import { DriveApiError, DriveClient, type RequestOptions } from "../../src/client";
import type { Node, NodePage, NodeWithPath, Version, VersionPage } from "../../src/shared/schemas/nodes";
import type { ChangesPage, ConflictPage } from "../../src/shared/schemas/sync";
import type { Share, ShareRole } from "../../src/shared/schemas/shares";
import type { Link, LinkAccess } from "../../src/shared/schemas/links";
import { currentToken, refresh } from "./session";

export type { Node, NodeWithPath, Version, Share, ShareRole, Link, LinkAccess, ConflictPage };

export const client = new DriveClient({ baseUrl: location.origin, token: currentToken, retries: 3 });

/**
 * A request as the signed-in user. A 401 means the access token was revoked
 * or expired early (another tab signed out, a clock skew): refresh once and
 * try again; if that fails too the session is over and the page shows sign-in.
 */
export async function call(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
	try {
		return await client.request(method, path, options);
	} catch (err) {
		if (!(err instanceof DriveApiError) || err.status !== 401) throw err;
		if (!(await refresh())) throw err;
		return client.request(method, path, options);
	}
}

export async function callJson<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
	return (await (await call(method, path, options)).json()) as T;
}

const id = encodeURIComponent;

export interface Usage {
	bytes_used: number;
	quota_bytes: number;
	files_bytes: number;
	versions_bytes: number;
	trash_bytes: number;
}

export const me = () => callJson<{ user: { id: string; email: string }; usage: Usage }>("GET", "/v1/me");
export const deleteAccount = (password: string) => call("DELETE", "/v1/me", { json: { password }, retries: 0 });
export const root = () => callJson<Node>("GET", "/v1/nodes/root");
export const node = (nodeId: string) => callJson<NodeWithPath>("GET", `/v1/nodes/${id(nodeId)}`);
export const children = (folderId: string, cursor?: string, limit = 1000, signal?: AbortSignal) =>
	callJson<NodePage>("GET", `/v1/nodes/${id(folderId)}/children`, { query: { limit, cursor }, ...(signal ? { signal } : {}) });
export const createFolder = (parentId: string, name: string) =>
	callJson<Node>("POST", "/v1/folders", { json: { parent_id: parentId, name }, retries: 0 });
export const rename = (nodeId: string, name: string) => callJson<Node>("PATCH", `/v1/nodes/${id(nodeId)}`, { json: { name }, retries: 0 });
export const move = (nodeId: string, parentId: string) =>
	callJson<Node>("PATCH", `/v1/nodes/${id(nodeId)}`, { json: { parent_id: parentId }, retries: 0 });
export const trash = (nodeId: string) => callJson<Node>("DELETE", `/v1/nodes/${id(nodeId)}`);
export const restore = (nodeId: string) => callJson<Node>("POST", `/v1/nodes/${id(nodeId)}/restore`);
export const deleteForever = (nodeId: string) => call("DELETE", `/v1/nodes/${id(nodeId)}`, { query: { permanent: true } });
export const trashPage = (cursor?: string) => callJson<NodePage>("GET", "/v1/trash", { query: { limit: 500, cursor } });
export const emptyTrash = () => call("DELETE", "/v1/trash");
export const copy = (nodeId: string, parentId: string, name?: string) =>
	callJson<Node>("POST", `/v1/nodes/${id(nodeId)}/copy`, {
		json: name === undefined ? { parent_id: parentId } : { parent_id: parentId, name },
	});

export const conflicts = () => callJson<ConflictPage>("GET", "/v1/conflicts", { query: { limit: 500 } });
/**
 * Settles a conflicted copy. both: the copy stays, no longer marked; original:
 * the copy goes to the trash; copy: the copy's content becomes the original's
 * new version, then the copy goes to the trash. Answers the node that stays.
 */
export const resolveConflict = (copyId: string, keep: "both" | "original" | "copy" = "both") =>
	callJson<Node>("POST", `/v1/conflicts/${id(copyId)}/resolve`, { json: { keep }, retries: 0 });

export const versions = (fileId: string, cursor?: string) =>
	callJson<VersionPage>("GET", `/v1/files/${id(fileId)}/versions`, { query: { cursor } });
export const restoreVersion = (fileId: string, versionId: string) =>
	callJson<unknown>("POST", `/v1/files/${id(fileId)}/versions/${id(versionId)}/restore`);
export const updateVersion = (fileId: string, versionId: string, patch: { keep_forever?: boolean; label?: string | null }) =>
	callJson<Version>("PATCH", `/v1/files/${id(fileId)}/versions/${id(versionId)}`, { json: patch });

export const shares = () => callJson<{ items: Share[]; next_cursor: string | null }>("GET", "/v1/shares");
export const sharedWithMe = () =>
	callJson<{
		items: {
			share_id: string;
			owner: { id: string; email: string };
			role: ShareRole;
			name: string;
			type: "file" | "folder";
			mount_id: string | null;
		}[];
		next_cursor: string | null;
	}>("GET", "/v1/shared-with-me");

export const changes = (cursor: string | undefined, signal?: AbortSignal) =>
	callJson<ChangesPage>("GET", "/v1/changes", { query: { cursor, limit: 1000 }, ...(signal ? { signal } : {}) });
export const latestCursor = () => callJson<{ cursor: string }>("GET", "/v1/changes/latest");
export const syncTicket = () => callJson<{ ticket: string; expires_in: number }>("POST", "/v1/sync/ticket");

export type IncomingShare = Awaited<ReturnType<typeof sharedWithMe>>["items"][number];
export interface Member {
	email: string;
	role: ShareRole;
}

/** The share of a node you own (at most one), or null. */
export const shareOf = async (nodeId: string) =>
	(await callJson<{ items: Share[] }>("GET", "/v1/shares", { query: { node_id: nodeId } })).items[0] ?? null;
export const share = (shareId: string) => callJson<Share>("GET", `/v1/shares/${id(shareId)}`);
export const createShare = (nodeId: string, members: Member[]) =>
	callJson<Share>("POST", "/v1/shares", { json: { node_id: nodeId, members }, retries: 0 });
export const addMembers = (shareId: string, members: Member[]) =>
	callJson<Share>("POST", `/v1/shares/${id(shareId)}/members`, { json: { members } });
export const setRole = (shareId: string, userId: string, role: ShareRole) =>
	callJson<Share>("PATCH", `/v1/shares/${id(shareId)}/members/${id(userId)}`, { json: { role } });
/** `userId` "me" leaves a share you are a member of. */
export const removeMember = (shareId: string, userId: string) => call("DELETE", `/v1/shares/${id(shareId)}/members/${id(userId)}`);
export const unshare = (shareId: string) => call("DELETE", `/v1/shares/${id(shareId)}`);
export const mountShare = (shareId: string) => callJson<Node>("POST", `/v1/shared-with-me/${id(shareId)}/mount`, { json: {} });

export type NewLink = Link & { token: string; url: string };
export const linksOf = (nodeId: string) =>
	callJson<{ items: Link[]; next_cursor: string | null }>("GET", "/v1/links", { query: { node_id: nodeId, limit: 100 } });
export const createLink = (body: { node_id: string; access: LinkAccess; expires_at?: string; password?: string }) =>
	callJson<NewLink>("POST", "/v1/links", { json: body, retries: 0 });
export const revokeLink = (linkId: string) => call("DELETE", `/v1/links/${id(linkId)}`);
