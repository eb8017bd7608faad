/**
 * Short-lived download URLs (docs/decisions/0026-web-app.md): `/v1/dl/<token>`
 * lets a browser fetch one version of one file natively (`<a download>`,
 * `<img>`, `<video>`), which cannot send a bearer token. The token only
 * names what to serve: every request checks the device and the access again,
 * as GET /v1/files/{id}/content would for that device now.
 */
import { notFound } from "../../../src/shared/commit/failures";
import { fail, ok, type Result } from "../../../src/shared/errors";
import type { Disposition, DownloadUrl, DownloadUrlBody } from "../../../src/shared/schemas/download-urls";
import type { Caller } from "../env";
import { readableVersion, type Readable } from "./egress";
import { loadCaller } from "./sessions";
import { signDownloadUrl, verifyDownloadUrl } from "./tokens";

/** The time download URLs are signed and checked at; tests move it instead of waiting out a URL's minute. */
export const downloadClock = { now: (): number => Date.now() };

/** A folder has no content to download; the same refusal as copying one. */
const NOT_A_FILE = fail("INVALID_REQUEST", "only a file has content to download", [{ reason: "not_a_file" }]);

/** A URL for the caller's device to download `fileId` (its head, or `version_id`) without a bearer token. */
export async function issueDownloadUrl(env: Env, caller: Caller, fileId: string, body: DownloadUrlBody): Promise<Result<DownloadUrl>> {
	const found = await readableVersion(env, caller, fileId, body.version_id, { folder: NOT_A_FILE });
	if (!found.ok) return found;
	const { token, expiresAt } = await signDownloadUrl(
		env,
		{
			userId: caller.userId,
			deviceId: caller.deviceId,
			ownerId: found.value.access.scope.userId,
			nodeId: fileId,
			// Pinned now, so that the bytes behind a URL never change.
			versionId: found.value.version.id,
			disposition: body.disposition ?? "attachment",
		},
		downloadClock.now(),
	);
	return ok({ url: `/v1/dl/${token}`, expires_at: new Date(expiresAt).toISOString() });
}

/**
 * What a download URL's token serves, if its device is still signed in and
 * may still read the file. A token that is not ours answers as a random id.
 */
export async function openDownloadUrl(env: Env, token: string): Promise<Result<Readable & { disposition: Disposition }>> {
	const claims = await verifyDownloadUrl(env, token, downloadClock.now());
	if (claims === "expired")
		return fail("UNAUTHENTICATED", "this download URL has expired; ask for a new one", [{ reason: "download_url_expired" }]);
	if (claims === null) return notFound("download URL");
	const loaded = await loadCaller(env, claims);
	if (!loaded.ok) return loaded;
	const caller = loaded.value;
	if (!caller)
		return fail("UNAUTHENTICATED", "the device this download URL was made for has been signed out", [{ reason: "device_signed_out" }]);
	const found = await readableVersion(env, caller, claims.nodeId, claims.versionId, { pinned: true });
	if (!found.ok) return found;
	// Node ids are unique across trees; a file found in another tree than at issue is not the one this URL named.
	if (found.value.access.scope.userId !== claims.ownerId) return notFound("file");
	return ok({ ...found.value, disposition: claims.disposition });
}
