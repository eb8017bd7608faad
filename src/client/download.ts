/**
 * The client side of delta downloads (docs/api.md, "Delta downloads"): read a
 * version's block list, take the blocks the device already holds from it, and
 * fetch only the others, one block per request, each checked against its
 * SHA-256. The bytes come out in file order as an async iterable, with a
 * bounded read-ahead, so a file of any size streams through a few blocks of
 * memory.
 *
 * Only fetch and WebCrypto are used, so this runs in Node 22 and browsers.
 *
 * @module
 */
import { sha256Hex } from "../shared/crypto";
import type { BlockList, ListedBlock } from "../shared/schemas/delta";
import { DriveApiError, type DriveClient, type QueryValue } from "./http";

/** Where a block's bytes came from. */
export type BlockSource = "local" | "remote";

/** One block of the version, as {@link downloadBlocks} hands it out. */
export interface DownloadedBlock {
	offset: number;
	size: number;
	/** SHA-256 of the block, lowercase hex. */
	hash: string;
	source: BlockSource;
}

/** Settings of {@link downloadBlocks}. */
export interface DownloadBlocksOptions {
	/**
	 * The version to download; default the head (then the version the list
	 * first names, whatever happens to the file meanwhile). A viewer of a
	 * shared file gets the head only.
	 */
	versionId?: string;
	/**
	 * The bytes of block `hash` if the device holds them, else null. Bytes that
	 * do not hash to `hash` are not used: the block is fetched instead.
	 */
	have?: (hash: string) => Promise<Uint8Array | null>;
	/** Called for each block, in file order, once its bytes are verified. */
	onBlock?: (block: DownloadedBlock) => void;
	/** Blocks resolved ahead of the one being handed out; default 4. Memory is about this many blocks. */
	readAhead?: number;
	/** Blocks per page of the list; default the server's (1,000). */
	pageSize?: number;
	signal?: AbortSignal;
}

/** What a delta download moved, so far or in all. */
export interface DeltaStats {
	blocksFetched: number;
	bytesFetched: number;
	blocksReused: number;
	bytesReused: number;
}

/** A delta download: the version it reads, and its bytes in file order (iterate once). */
export interface DeltaDownload extends AsyncIterable<Uint8Array> {
	/** The id the download was asked for. */
	nodeId: string;
	versionId: string;
	size: number;
	/** SHA-256 of the whole version, lowercase hex. */
	contentHash: string;
	/** Counts, updated as the bytes are handed out. */
	readonly stats: DeltaStats;
}

/** The version changed during the download, or the list does not add up: the bytes would not be one version. */
export class DeltaDownloadError extends Error {
	override readonly name = "DeltaDownloadError";
}

/**
 * Downloads a version of file `nodeId` as its blocks, fetching only those
 * `have` does not supply. Resolves once the first page of the block list is
 * in (so an unknown file fails here), before any block is read.
 *
 * @throws DriveApiError when the list or a block is refused; the iteration
 *   throws it too (404 if the version is deleted meanwhile), and
 *   {@link DeltaDownloadError} when the blocks would not make up the version
 *   the list described, or a viewer's head moved on.
 */
export async function downloadBlocks(client: DriveClient, nodeId: string, options: DownloadBlocksOptions = {}): Promise<DeltaDownload> {
	const path = `/v1/files/${encodeURIComponent(nodeId)}/blocks`;
	const first = await client.json<BlockList>("GET", path, {
		query: { version_id: options.versionId, limit: options.pageSize },
		signal: options.signal,
	});
	// Everything after the first page names the version it described, so a new head cannot mix into the bytes.
	const pinned = async (subpath: string, query: Record<string, QueryValue>): Promise<Response> => {
		try {
			return await client.request("GET", path + subpath, { query: { ...query, version_id: first.version_id }, signal: options.signal });
		} catch (err) {
			// A viewer may name the head only: once it moves, their download has nothing left to read.
			if (err instanceof DriveApiError && err.code === "FORBIDDEN" && options.versionId === undefined)
				throw new DeltaDownloadError(`file ${nodeId} changed during the download`, { cause: err });
			throw err;
		}
	};
	const page = async (offset: number) => (await (await pinned("", { offset, limit: options.pageSize })).json()) as BlockList;
	const stats: DeltaStats = { blocksFetched: 0, bytesFetched: 0, blocksReused: 0, bytesReused: 0 };

	/** Every block of the version in order, page by page, checked to tile the file. */
	async function* listed(): AsyncGenerator<ListedBlock> {
		let current = first;
		let end = 0;
		for (;;) {
			if (current.version_id !== first.version_id) throw new DeltaDownloadError(`file ${nodeId} changed during the download`);
			for (const block of current.blocks) {
				if (block.offset !== end) throw new DeltaDownloadError(`block at ${block.offset} does not follow byte ${end}`);
				end += block.size;
				yield block;
			}
			if (current.next_offset === null) break;
			current = await page(current.next_offset);
		}
		if (end !== first.size) throw new DeltaDownloadError(`the blocks make ${end} bytes of a ${first.size}-byte version`);
	}

	async function resolve(block: ListedBlock): Promise<{ bytes: Uint8Array; source: BlockSource }> {
		const local = options.have ? await options.have(block.hash) : null;
		if (local && (await matches(local, block))) return { bytes: local, source: "local" };
		const res = await pinned(`/${block.hash}`, {});
		const bytes = new Uint8Array(await res.arrayBuffer());
		if (!(await matches(bytes, block))) throw new DeltaDownloadError(`block ${block.hash} arrived with other bytes`);
		return { bytes, source: "remote" };
	}

	async function* chunks(): AsyncGenerator<Uint8Array> {
		const readAhead = Math.max(1, options.readAhead ?? 4);
		const blocks = listed();
		const pending: { block: ListedBlock; read: Promise<{ bytes: Uint8Array; source: BlockSource }> }[] = [];
		let listing = true;
		const fill = async () => {
			while (listing && pending.length < readAhead) {
				const next = await blocks.next();
				if (next.done === true) {
					listing = false;
					break;
				}
				const read = resolve(next.value);
				// Failures surface when awaited in order; this keeps a read-ahead failure from being reported as unhandled first.
				read.catch(() => undefined);
				pending.push({ block: next.value, read });
			}
		};
		try {
			await fill();
			for (let head = pending.shift(); head !== undefined; head = pending.shift()) {
				const { bytes, source } = await head.read;
				if (source === "local") {
					stats.blocksReused++;
					stats.bytesReused += bytes.byteLength;
				} else {
					stats.blocksFetched++;
					stats.bytesFetched += bytes.byteLength;
				}
				options.onBlock?.({ ...head.block, source });
				yield bytes;
				await fill();
			}
		} finally {
			pending.length = 0;
			await blocks.return(undefined);
		}
	}

	return {
		nodeId,
		versionId: first.version_id,
		size: first.size,
		contentHash: first.content_hash,
		stats,
		[Symbol.asyncIterator]: () => chunks(),
	};
}

async function matches(bytes: Uint8Array, block: ListedBlock): Promise<boolean> {
	return bytes.byteLength === block.size && (await sha256Hex(bytes)) === block.hash;
}
