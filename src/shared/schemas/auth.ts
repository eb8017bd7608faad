/** Accounts: signup, login, refresh, logout and me. */
import { z } from "@hono/zod-openapi";

export const Email = z
	.string()
	.trim()
	.max(254)
	.email("must be an email address")
	.transform((e) => e.normalize("NFC").toLowerCase())
	.openapi({ example: "ada@example.com" });

// 10 to 1024 characters: long passphrases welcome (NIST SP 800-63B), the
// upper bound only keeps PBKDF2 input sizes sane.
export const Password = z.string().min(10, "must be at least 10 characters").max(1024).openapi({ example: "correct horse battery staple" });

export const DeviceName = z
	.string()
	.trim()
	.min(1)
	.max(100)
	.refine((s) => !/[\u0000-\u001f\u007f]/u.test(s), "must not contain control characters");

export const SignupBody = z.object({ email: Email, password: Password, device_name: DeviceName.optional() }).openapi("SignupBody");
export const LoginBody = z
	.object({ email: Email, password: z.string().min(1).max(1024), device_name: DeviceName.optional() })
	.openapi("LoginBody");
export const DeleteAccountBody = z
	.object({ password: z.string().min(1).max(1024).openapi({ description: "The account's password, asked again" }) })
	.openapi("DeleteAccountBody");
export const RefreshBody = z.object({ refresh_token: z.string().min(1).max(256) }).openapi("RefreshBody");

export const User = z.object({ id: z.string(), email: z.string() }).openapi("User");

export const TokenPair = z
	.object({
		access_token: z.string(),
		refresh_token: z.string(),
		expires_in: z.number().int().openapi({ description: "Seconds until the access token expires" }),
	})
	.openapi("TokenPair");
export type TokenPair = z.infer<typeof TokenPair>;

export const Session = z
	.object({
		user: User,
		device_id: z.string(),
		access_token: z.string(),
		refresh_token: z.string(),
		expires_in: z.number().int(),
	})
	.openapi("Session");
export type Session = z.infer<typeof Session>;

export const Me = z
	.object({
		user: User,
		device: z.object({ id: z.string(), name: z.string() }),
		usage: z.object({
			bytes_used: z.number().int().openapi({
				description: "Bytes of every version the user can still download, trashed files included (docs/api.md, Storage used)",
			}),
			quota_bytes: z.number().int(),
			reserved_bytes: z.number().int().openapi({ description: "Declared sizes of open uploads, held against the quota (extension)" }),
			nodes: z.number().int().openapi({ description: "Files and folders, trash included (extension)" }),
			files_bytes: z
				.number()
				.int()
				.openapi({ description: "Of bytes_used: the current version of every file not in the trash (extension)" }),
			versions_bytes: z
				.number()
				.int()
				.openapi({ description: "Of bytes_used: earlier versions of files not in the trash, their version history (extension)" }),
			trash_bytes: z.number().int().openapi({
				description:
					"Of bytes_used: every version of the files in the trash, including items being deleted forever until their deletion lands (extension)",
			}),
		}),
	})
	.openapi("Me");
export type Me = z.infer<typeof Me>;
