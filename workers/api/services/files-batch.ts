/**
 * POST /v1/files/batch (docs/api.md, "Batches of small files"): many small
 * files in one multipart request, stored here and committed through ONE hub
 * call, so a sync client's first upload of thousands of small files is not
 * bound by one commit round trip per file.
 *
 * Everything that can refuse the request as a whole (its size, the manifest,
 * a part that does not match its item) is checked on the bytes in memory
 * before a block is stored, so such a refusal changes nothing. Items then
 * fail or land independently.
 */
import { createHash } from "node:crypto";
import { Chunker } from "../../../src/shared/chunking";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { nodes } from "../../../src/shared/db/schema";
import { inList } from "../../../src/shared/db/lists";
import { and, eq } from "drizzle-orm";
import { fail, ok, statusOf, type Failure, type Result } from "../../../src/shared/errors";
import {
	BatchManifest,
	MAX_BATCH_BYTES,
	MAX_BATCH_FILE_BYTES,
	MAX_BATCH_FILES,
	MAX_BATCH_MANIFEST_BYTES,
	type BatchItem,
	type BatchItemResult,
} from "../../../src/shared/schemas/files-batch";
import type { BatchFileInput, CommitOutcome } from "../../notify/contract";
import type { Caller } from "../env";
import { BlockWriter, keyRing } from "./block-store";
import { readBounded } from "./body";
import { gcClockOf, gcClockStatement } from "./gc";
import { readStoredUsage, storedUsageStatement } from "./tree";
import { quotaExceeded } from "../../../src/shared/commit/failures";
import { hubFor, shardFor } from "./hub";
import { forget } from "./ingest";

/** The multipart framing around the parts: boundaries and part headers, generously (256 parts of a few hundred bytes). */
const FRAMING_BYTES = 256 * 1024;

/** The most a batch's body may have: every item at its limit, the manifest, and the framing. */
export const MAX_BATCH_BODY_BYTES = MAX_BATCH_BYTES + MAX_BATCH_MANIFEST_BYTES + FRAMING_BYTES;

/** Lanes storing blocks at once, each with its own BlockWriter: about 8 R2 puts in flight. */
const STORE_LANES = 3;

/** An item checked against its part, ready to store. */
interface CheckedFile {
	item: BatchItem;
	bytes: Uint8Array;
}

/** A batch whose parts all match their items; refusals of the whole request as Failures. */
export async function readBatch(request: Request): Promise<Result<CheckedFile[]>> {
	const form = await readForm(request);
	if (!form.ok) return form;
	const parts = [...form.value.entries()];
	const [first, ...files] = parts;
	if (first === undefined || first[0] !== "manifest")
		return fail("INVALID_REQUEST", "the first part must be the manifest", [{ field: "manifest" }]);
	const manifest = await parseManifest(first[1]);
	if (!manifest.ok) return manifest;
	const items = manifest.value.items;
	if (files.length !== items.length)
		return fail("INVALID_REQUEST", `the manifest lists ${items.length} items, and ${files.length} parts follow it`, [
			{ field: "parts", items: items.length, parts: files.length },
		]);
	let total = 0;
	const checked: CheckedFile[] = [];
	for (const [index, [, part]] of files.entries()) {
		const item = items[index] as BatchItem;
		if (typeof part === "string")
			return fail("INVALID_REQUEST", `part ${index + 1} after the manifest must be a file part (with a filename)`, [{ index }]);
		if (Math.max(part.size, item.size) > MAX_BATCH_FILE_BYTES)
			return fail("PAYLOAD_TOO_LARGE", `a file in a batch is at most ${MAX_BATCH_FILE_BYTES} bytes; send larger ones on their own`, [
				{ index, limit_bytes: MAX_BATCH_FILE_BYTES },
			]);
		total += part.size;
		if (total > MAX_BATCH_BYTES)
			return fail("PAYLOAD_TOO_LARGE", `a batch's files add up to at most ${MAX_BATCH_BYTES} bytes`, [{ limit_bytes: MAX_BATCH_BYTES }]);
		if (part.size !== item.size)
			return fail("INVALID_REQUEST", `item ${index} declares ${item.size} bytes, and its part has ${part.size}`, [
				{ index, field: "size", size: part.size },
			]);
		const bytes = new Uint8Array(await part.arrayBuffer());
		const actual = createHash("sha256").update(bytes).digest("hex");
		if (actual !== item.sha256)
			return fail("HASH_MISMATCH", `item ${index}'s part does not hash to its sha256`, [{ index, expected: item.sha256, actual }]);
		checked.push({ item, bytes });
	}
	return ok(checked);
}

/** The body, bounded, as form data; the raw bytes are not kept past it (a batch holds up to 16 MiB). */
async function readForm(request: Request): Promise<Result<FormData>> {
	const type = request.headers.get("Content-Type") ?? "";
	if (!/^multipart\/form-data\s*;/i.test(type))
		return fail("UNSUPPORTED_MEDIA_TYPE", "send the batch as multipart/form-data: a manifest part, then one part per item");
	const declared = request.headers.get("Content-Length");
	if (declared !== null && !(Number(declared) <= MAX_BATCH_BODY_BYTES)) return tooLarge();
	const body = await readBounded(request.body, MAX_BATCH_BODY_BYTES, declared === null ? null : Number(declared));
	if (!body.ok) return tooLarge();
	try {
		return ok(await new Response(body.bytes, { headers: { "Content-Type": type } }).formData());
	} catch {
		return fail("INVALID_REQUEST", "the body is not valid multipart/form-data");
	}
}

function tooLarge(): Result<never> {
	return fail(
		"PAYLOAD_TOO_LARGE",
		`a batch's body is at most ${MAX_BATCH_BODY_BYTES} bytes: ${MAX_BATCH_FILES} files of at most ${MAX_BATCH_FILE_BYTES} bytes, ${MAX_BATCH_BYTES} in all`,
		[{ limit_bytes: MAX_BATCH_BODY_BYTES }],
	);
}

async function parseManifest(part: string | File): Promise<Result<BatchManifest>> {
	const text = typeof part === "string" ? part : await part.text();
	if (text.length > MAX_BATCH_MANIFEST_BYTES)
		return fail("PAYLOAD_TOO_LARGE", `the manifest is at most ${MAX_BATCH_MANIFEST_BYTES} bytes`, [{ field: "manifest" }]);
	let json: unknown;
	try {
		json = JSON.parse(text);
	} catch {
		return fail("INVALID_REQUEST", "the manifest is not JSON", [{ field: "manifest" }]);
	}
	const parsed = BatchManifest.safeParse(json);
	if (!parsed.success)
		return fail(
			"INVALID_REQUEST",
			"the manifest is not valid",
			parsed.error.issues.map((issue) => ({ field: ["manifest", ...issue.path].join("."), message: issue.message })),
		);
	return ok(parsed.data);
}

/**
 * Stores the files' blocks and commits them through the caller's hub; one
 * answer per item, in order. Items into shared folders are refused per item
 * (a batch reaches the caller's own tree only). Blocks of items that did not
 * land go to the collector, as for any refused upload.
 */
export async function commitBatch(env: Env, caller: Caller, files: CheckedFile[]): Promise<Result<BatchItemResult[]>> {
	const db = shardFor(env, caller);
	const answers: (BatchItemResult | null)[] = files.map(() => null);
	const edited = await editedFiles(env, caller, files);
	const inputs: { at: number; input: Omit<BatchFileInput, "blocks">; bytes: Uint8Array }[] = [];
	for (const [at, { item, bytes }] of files.entries()) {
		const target = item.file_id === undefined ? { parentId: item.parent_id ?? "", name: item.name ?? "" } : edited.get(item.file_id);
		if (target === undefined) {
			answers[at] = refusal(fail("NOT_FOUND", "file not found (a batch reaches only your own files)").error);
			continue;
		}
		const input: Omit<BatchFileInput, "blocks"> = {
			...target,
			size: item.size,
			contentHash: item.sha256,
			baseVersionId: item.if_match ?? null,
			onConflict: item.on_conflict,
			createOnly: item.create_only,
		};
		if (item.file_id !== undefined) input.fileId = item.file_id;
		inputs.push({ at, input, bytes });
	}
	// One round trip: the gc clock, read before any block is stored (the commit refuses blocks the collector
	// deleted after it, docs/decisions/0017), and the usage, so that a batch the quota cannot hold stores nothing.
	const [usage, clock] = await db.$client.batch<Record<string, unknown>>([storedUsageStatement(db, caller.userId), gcClockStatement(db)]);
	const { versionBytes } = readStoredUsage((usage?.results ?? []) as { version_bytes: number; nodes: number }[]);
	const blocksSince = gcClockOf((clock?.results ?? []) as { seq: number }[]);
	const size = inputs.reduce((sum, { input }) => sum + input.size, 0);
	if (versionBytes + size > caller.quotaBytes) {
		const full = quotaExceeded(size, versionBytes, caller.quotaBytes).error;
		for (const { at } of inputs) answers[at] = refusal(full);
		inputs.length = 0;
	}
	const written: string[] = [];
	let committed: Result<Result<CommitOutcome>[]> = ok([]);
	let blocks: BlockRef[][] = [];
	try {
		blocks = await storeAll(
			env,
			inputs.map(({ bytes }) => bytes),
			written,
		);
		if (inputs.length > 0)
			committed = await hubFor(env, caller.userId).commitFiles({
				files: inputs.map(({ input }, i) => ({ ...input, blocks: blocks[i] ?? [] })),
				blocksSince,
				quotaBytes: caller.quotaBytes,
				actor: { deviceId: caller.deviceId, deviceName: caller.deviceName },
			});
	} catch (err) {
		await forget(db, written).catch((recording: unknown) => console.error("recording orphan blocks failed", String(recording)));
		throw err;
	}
	if (!committed.ok) {
		await forget(db, written);
		return committed;
	}
	const kept = new Set<string>();
	for (const [i, result] of committed.value.entries()) {
		const at = inputs[i]?.at ?? -1;
		if (!result.ok) {
			answers[at] = refusal(result.error);
			continue;
		}
		const { created, ...commit } = result.value;
		answers[at] = { status: commit.conflict ? "conflict" : created ? "created" : "updated", ...commit };
		for (const block of blocks[i] ?? []) kept.add(block.hash);
	}
	await forget(
		db,
		[...new Set(written)].filter((hash) => !kept.has(hash)),
	);
	return ok(answers.map((answer) => answer ?? refusal(fail("INTERNAL", "no answer").error)));
}

/**
 * Stores each file's blocks, cut by the same chunker as every upload, in
 * {@link STORE_LANES} lanes. `written` receives the hash of every block whose
 * put started, and no put is still running once this returns or throws.
 */
async function storeAll(env: Env, files: readonly Uint8Array[], written: string[]): Promise<BlockRef[][]> {
	const ring = keyRing(env);
	const out: BlockRef[][] = files.map(() => []);
	let next = 0;
	const lane = async (): Promise<void> => {
		const writer = new BlockWriter(env.BLOBS, ring);
		try {
			for (let i = next++; i < files.length; i = next++) {
				const blocks = out[i] as BlockRef[];
				const chunker = new Chunker();
				let offset = 0;
				// Each chunk may be a view the chunker reuses: stored before the next is cut.
				const store = async (chunk: Uint8Array): Promise<void> => {
					const hash = await writer.write(chunk);
					written.push(hash);
					blocks.push({ offset, size: chunk.byteLength, hash });
					offset += chunk.byteLength;
				};
				for (const chunk of chunker.views(files[i] as Uint8Array)) await store(chunk);
				const last = chunker.finish();
				if (last !== null) await store(last);
			}
			await writer.flush();
		} finally {
			await writer.settle();
		}
	};
	// Every lane ends before this returns, even when one failed: `written` must not grow after.
	const lanes = await Promise.allSettled(Array.from({ length: Math.min(STORE_LANES, files.length) }, lane));
	const failed = lanes.find((lane) => lane.status === "rejected");
	if (failed) throw failed.reason;
	return out;
}

/** An item's refusal as its answer. */
function refusal(error: Failure): BatchItemResult {
	return {
		error: { code: error.code, status: statusOf(error.code), message: error.message, ...(error.details ? { details: error.details } : {}) },
	};
}

/** Where the edited files of the batch are (by id, in the caller's own tree, live): one read. */
async function editedFiles(env: Env, caller: Caller, files: CheckedFile[]): Promise<Map<string, { parentId: string; name: string }>> {
	const ids = [...new Set(files.flatMap(({ item }) => (item.file_id === undefined ? [] : [item.file_id])))];
	const found = new Map<string, { parentId: string; name: string }>();
	if (ids.length === 0) return found;
	const rows = await shardFor(env, caller)
		.select()
		.from(nodes)
		.where(and(eq(nodes.userId, caller.userId), inList(nodes.id, ids)));
	for (const row of rows)
		if (row.type === "file" && row.trashedAt === null && row.parentId !== null && row.mountShareId === null)
			found.set(row.id, { parentId: row.parentId, name: row.name });
	return found;
}
