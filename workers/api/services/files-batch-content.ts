/**
 * POST /v1/files/batch/content (docs/api.md, "Batches of small files"): many
 * small versions downloaded in one request, so a sync client's first
 * download of thousands of small files is not bound by one request per file.
 *
 * Every item's file, version and blocks are read in ONE D1 batch of three
 * list queries; the blocks are then read from R2 through the block store
 * (which decrypts and verifies them) with a bounded number in flight, and
 * the answer streams one frame per item, in order, so memory stays bounded.
 */
import { and, asc, eq, sql } from "drizzle-orm";
import { notFound } from "../../../src/shared/commit/failures";
import type { BlockRef } from "../../../src/shared/db/mappers";
import { inList } from "../../../src/shared/db/lists";
import { nodes, versionBlocks, versions, type NodeRow, type VersionRow } from "../../../src/shared/db/schema";
import { fail, type Failure } from "../../../src/shared/errors";
import { MAX_BATCH_BYTES, MAX_BATCH_FILE_BYTES, type BatchContentRequest } from "../../../src/shared/schemas/files-batch";
import type { Caller } from "../env";
import { getBlock, keyRing } from "./block-store";
import { refusal } from "./files-batch";
import { shardFor } from "./hub";
import { touchReads } from "./tiering";

/** Blocks read from R2 at once, ahead of the frame being sent. */
const BLOCKS_IN_FLIGHT = 8;

/** One item as planned: the version to send and its blocks, or why it is refused. */
export type PlannedItem = { version: VersionRow; blocks: BlockRef[] } | { error: Failure };

/**
 * Decides every item: found in the caller's own tree (as `GET
 * /v1/files/{id}/content` finds a file and version, services/egress.ts
 * findDownload), within the per-file limit, and within the batch's byte cap
 * in item order; items past the cap answer `batch_full`, to be asked again.
 */
export async function planBatchDownload(env: Env, caller: Caller, items: BatchContentRequest["items"]): Promise<PlannedItem[]> {
	const db = shardFor(env, caller);
	const fileIds = [...new Set(items.map((item) => item.file_id))];
	const versionIds = [...new Set(items.map((item) => item.version_id))];
	// Blocks only of versions small enough to be sent: a large file's block list is never read here.
	const [nodeRows, versionRows, blockRows] = await db.batch([
		db
			.select()
			.from(nodes)
			.where(and(eq(nodes.userId, caller.userId), inList(nodes.id, fileIds))),
		db
			.select()
			.from(versions)
			.where(and(eq(versions.userId, caller.userId), inList(versions.id, versionIds))),
		db
			.select({ versionId: versionBlocks.versionId, offset: versionBlocks.offset, size: versionBlocks.size, hash: versionBlocks.hash })
			.from(versionBlocks)
			.innerJoin(versions, eq(versions.id, versionBlocks.versionId))
			.where(
				and(
					inList(versionBlocks.versionId, versionIds),
					eq(versions.userId, caller.userId),
					sql`${versions.size} <= ${MAX_BATCH_FILE_BYTES}`,
				),
			)
			.orderBy(asc(versionBlocks.versionId), asc(versionBlocks.offset)),
	]);
	const nodeById = new Map<string, NodeRow>(nodeRows.map((row) => [row.id, row]));
	const versionById = new Map<string, VersionRow>(versionRows.map((row) => [row.id, row]));
	const blocksOf = new Map<string, BlockRef[]>();
	for (const { versionId, ...block } of blockRows) {
		const list = blocksOf.get(versionId) ?? [];
		list.push(block);
		blocksOf.set(versionId, list);
	}
	let total = 0;
	let full = false;
	const planned: PlannedItem[] = items.map(({ file_id, version_id }) => {
		const node = nodeById.get(file_id);
		const version = versionById.get(version_id);
		// A mount or a file shared with the caller is not theirs: downloaded on its own (GET content).
		if (!node || node.type !== "file" || node.headVersionId === null || node.mountShareId !== null)
			return { error: notFound("file").error };
		if (!version || version.nodeId !== node.id) return { error: notFound("version").error };
		if (version.size > MAX_BATCH_FILE_BYTES)
			return {
				error: fail("INVALID_REQUEST", `a file in a batch is at most ${MAX_BATCH_FILE_BYTES} bytes; download it on its own`, [
					{ reason: "too_large", size: version.size, limit_bytes: MAX_BATCH_FILE_BYTES },
				]).error,
			};
		// Once one item does not fit, none after it is sent: the answer is a prefix the client can resume after.
		if (full || total + version.size > MAX_BATCH_BYTES) {
			full = true;
			return {
				error: fail("PAYLOAD_TOO_LARGE", `a batch sends at most ${MAX_BATCH_BYTES} bytes; ask for this item again`, [
					{ reason: "batch_full", limit_bytes: MAX_BATCH_BYTES },
				]).error,
			};
		}
		total += version.size;
		return { version, blocks: blocksOf.get(version.id) ?? [] };
	});
	const sent = planned.flatMap((item) => ("version" in item ? [item.version] : []));
	// A read keeps the versions' blocks out of cold storage; a failed stamp costs a tier, never the download.
	await touchReads(db, sent).catch((err: unknown) => console.error(JSON.stringify({ touchReads: sent.length, error: String(err) })));
	return planned;
}

/**
 * The answer's body: per item, in order, a JSON line (`\n`-terminated) and,
 * for a version, exactly `size` bytes. An item's blocks are all read before
 * its frame starts, so a block that cannot be read turns into that item's
 * error frame, never a broken or wrong file.
 */
export function batchDownloadStream(env: Env, items: BatchContentRequest["items"], planned: PlannedItem[]): ReadableStream<Uint8Array> {
	const ring = keyRing(env);
	const encoder = new TextEncoder();
	const frames: Promise<Uint8Array[]>[] = [];
	let next = 0;
	let inFlight = 0;
	const frame = async (index: number): Promise<Uint8Array[]> => {
		const item = planned[index] as PlannedItem;
		const { file_id } = items[index] as BatchContentRequest["items"][number];
		if ("error" in item) return [line({ index, ...refusal(item.error) })];
		try {
			const parts = await Promise.all(item.blocks.map((block) => getBlock(env.BLOBS, ring, block.hash)));
			const { version } = item;
			const header = { index, file_id, version_id: version.id, size: version.size, sha256: version.contentHash };
			return [line(header), ...parts];
		} catch (err) {
			console.error(JSON.stringify({ batchDownload: item.version.id, error: String(err) }));
			return [line({ index, ...refusal(fail("INTERNAL", "a block of this version could not be read; download it on its own").error) })];
		} finally {
			inFlight -= item.blocks.length;
		}
	};
	const line = (value: unknown) => encoder.encode(`${JSON.stringify(value)}\n`);
	// Starts items ahead while their blocks fit the budget; at least one, so a file of many blocks still goes.
	const fill = () => {
		while (next < planned.length && (frames.length === 0 || inFlight < BLOCKS_IN_FLIGHT)) {
			const item = planned[next] as PlannedItem;
			inFlight += "blocks" in item ? item.blocks.length : 0;
			const read = frame(next++);
			read.catch(() => undefined);
			frames.push(read);
		}
	};
	return new ReadableStream<Uint8Array>({
		async pull(controller) {
			fill();
			const read = frames.shift();
			if (!read) {
				controller.close();
				return;
			}
			for (const part of await read) controller.enqueue(part);
			fill();
		},
		cancel() {
			frames.length = 0;
			next = planned.length;
		},
	});
}
