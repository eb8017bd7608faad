/** Sharing with people (extension; docs/api.md, "Sharing"). */
import { z } from "@hono/zod-openapi";
import { NodeId, Timestamp } from "./common";
import { Node } from "./nodes";

export const ShareRole = z
	.enum(["viewer", "editor"])
	.openapi({ description: "viewer: read and download; editor: also upload, create, rename, move within the share, trash and restore" });
export type ShareRole = z.infer<typeof ShareRole>;

export const Person = z.object({ id: z.string(), email: z.string() }).openapi("Person");

export const MemberInput = z.object({ email: z.string().min(3).max(254), role: ShareRole });

export const CreateShareBody = z.object({ node_id: NodeId, members: z.array(MemberInput).min(1).max(100) }).openapi("CreateShareBody");

export const AddMembersBody = z.object({ members: z.array(MemberInput).min(1).max(100) }).openapi("AddMembersBody");

export const SetRoleBody = z.object({ role: ShareRole }).openapi("SetRoleBody");

export const ShareMember = z.object({ user: Person, role: ShareRole, added_at: Timestamp }).openapi("ShareMember");

export const Share = z
	.object({
		id: z.string(),
		node: Node.openapi({ description: "The shared file or folder, as you see it (for a member: their mount)" }),
		owner: Person,
		members: z.array(ShareMember),
		your_role: z.enum(["owner", "editor", "viewer"]),
		created_at: Timestamp,
	})
	.openapi("Share");
export type Share = z.infer<typeof Share>;

export const SharePage = z.object({ items: z.array(Share), next_cursor: z.string().nullable() }).openapi("SharePage");

export const IncomingShare = z
	.object({
		share_id: z.string(),
		owner: Person,
		role: ShareRole,
		name: z.string().openapi({ description: "The shared item's name when it was shared" }),
		type: z.enum(["file", "folder"]),
		mount_id: NodeId.nullable().openapi({ description: "Where it is in your tree; null once you removed it from there (mount it again)" }),
	})
	.openapi("IncomingShare");

export const IncomingSharePage = z
	.object({ items: z.array(IncomingShare), next_cursor: z.string().nullable() })
	.openapi("IncomingSharePage");

export const MountBody = z
	.object({ parent_id: NodeId.optional().openapi({ description: "A folder of yours; default your root" }) })
	.openapi("MountBody");

export const CopyBody = z.object({ parent_id: NodeId, name: z.string().min(1).max(1024).optional() }).openapi("CopyBody");
