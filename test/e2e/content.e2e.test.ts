/// <reference types="node" />
/**
 * File content end to end: a Node client with plain fetch against the real
 * local stack (wrangler dev, both workers), as an API client would use it.
 */
import { createHash } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { expectError } from "../support/envelope";
import { expectOk, type TestUser } from "../support/harness";
import { hashBody, randomStream, stackHarness, zeroStream } from "../support/stack";

const h = stackHarness();

/** 90 MiB: the largest round size under the 100 MB (10^8 bytes) request limit. */
const SIZE = 90 * 1024 * 1024;
const MAX_REQUEST_BYTES = 100_000_000;

/** PUT content with a streamed body; `length` null sends it chunked, without Content-Length. */
function putStream(user: TestUser, parentId: string, name: string, body: ReadableStream<Uint8Array>, length: number | null) {
	const headers: Record<string, string> = { "Content-Type": "application/octet-stream" };
	if (length !== null) headers["Content-Length"] = String(length);
	return h.putContent(user, parentId, name, body, { headers });
}

async function bytesUsed(user: TestUser): Promise<number> {
	return expectOk(await h.me(user), 200).usage.bytes_used;
}

describe("file content through the local stack", () => {
	let session: TestUser;

	beforeAll(async () => {
		session = await h.signup("e2e");
	});

	describe("happy path", () => {
		it("stores 90 MiB streamed from a generator and streams back the same bytes", async () => {
			const sent = createHash("sha256");
			const put = await putStream(
				session,
				session.rootId,
				"random-90MiB.bin",
				randomStream(SIZE, "e2e-90MiB", (piece) => sent.update(piece)),
				SIZE,
			);
			const putBody = expectOk(put, 201);
			const expected = sent.digest("hex");
			expect(putBody.node).toMatchObject({
				type: "file",
				name: "random-90MiB.bin",
				size: SIZE,
				content_hash: expected,
				version_id: putBody.version.id,
			});

			const get = await h.request(`/v1/files/${putBody.node.id}/content`, { token: session.token });
			expect(get.status).toBe(200);
			expect(get.headers.get("Content-Length")).toBe(String(SIZE));
			expect(get.headers.get("ETag")).toBe(`"${putBody.version.id}"`);
			const received = await hashBody(get);
			expect(received.bytes).toBe(SIZE);
			expect(received.sha256).toBe(expected);
		});
	});

	describe("errors", () => {
		it("refuses a body declared over 100,000,000 bytes with 413 and leaves nothing in the folder", async () => {
			const folder = (await h.mkdir(session, session.rootId, "declared-too-large")).id;
			const before = await bytesUsed(session);

			// The service refuses on the header alone. Locally the answer still
			// only comes once the request body is in (wrangler dev's runtime
			// does not answer early), so the declared bytes are really sent.
			const res = await putStream(session, folder, "huge.bin", zeroStream(MAX_REQUEST_BYTES + 1), MAX_REQUEST_BYTES + 1);
			await expectError(res, 413, "PAYLOAD_TOO_LARGE");
			expect(await h.listAll(session, folder)).toEqual([]);
			expect(await bytesUsed(session)).toBe(before);
		});

		it("refuses a streamed body without Content-Length once it passes 100,000,000 bytes, leaving nothing in the folder", async () => {
			const folder = (await h.mkdir(session, session.rootId, "streamed-too-large")).id;
			const before = await bytesUsed(session);

			const res = await putStream(session, folder, "huge.bin", zeroStream(MAX_REQUEST_BYTES + 1), null);
			await expectError(res, 413, "PAYLOAD_TOO_LARGE");
			expect(await h.listAll(session, folder)).toEqual([]);
			expect(await bytesUsed(session)).toBe(before);
		});
	});

	describe("auth", () => {
		it("refuses an upload without a token", async () => {
			await expectError(await h.putContent({ token: "" }, session.rootId, "anonymous.bin", new Uint8Array(16)), 401, "UNAUTHENTICATED");
		});

		it("answers 404 to another user asking for a file's content", async () => {
			const { node } = await h.upload(session, session.rootId, "private.txt", "mine");
			const stranger = await h.signup("e2e");
			await expectError(await h.request(`/v1/files/${node.id}/content`, { token: stranger.token }), 404, "NOT_FOUND");
		});
	});
});
