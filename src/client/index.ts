/**
 * Drive's client library, shared by the command-line client and the web
 * page. Web-standard APIs only: it runs in Node 22 and browsers.
 *
 * @module
 */
export {
	DriveApiError,
	DriveClient,
	isAbortError,
	isRetryableStatus,
	parseRetryAfter,
	toApiError,
	type DriveApiErrorCode,
	type DriveClientOptions,
	type FetchLike,
	type QueryValue,
	type RequestOptions,
	type RetryInfo,
	type TokenProvider,
} from "./http";
export { BATCH_LIMITS, commitFiles, type BatchFile, type BatchOutcome } from "./batch";
export {
	DeltaDownloadError,
	downloadBlocks,
	type BlockSource,
	type DeltaDownload,
	type DeltaStats,
	type DownloadBlocksOptions,
	type DownloadedBlock,
} from "./download";
export {
	planUpload,
	SourceChangedError,
	uploadFile,
	type IncrementalHash,
	type PlannedBlock,
	type PlanOptions,
	type UploadOptions,
	type UploadPlan,
	type UploadProgress,
	type UploadResult,
	type UploadSessionInfo,
	type UploadSource,
} from "./upload";
