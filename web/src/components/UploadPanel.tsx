/**
 * The uploads: per-file and total progress, cancel one or all, and the
 * uploads an earlier page load left unfinished, offered for resuming once the
 * person picks the same file again (upload/resume.ts).
 */
import { useEffect, useRef, useState } from "preact/hooks";
import { Alert } from "./Async";
import { user } from "../session";
import { notify } from "../toasts";
import { cancelAll, clearFinished, resumeUpload, runningUploadIds, uploads, type UploadJob } from "../upload/queue";
import { forget, loadResumable, resumable, type Resumable } from "../upload/resume";
import { formatBytes } from "../format";
import { call } from "../api";

const STATE_TEXT: Record<UploadJob["state"], string> = {
	queued: "Waiting",
	hashing: "Preparing",
	uploading: "Uploading",
	committing: "Finishing",
	done: "Uploaded",
	failed: "Failed",
	cancelled: "Cancelled",
};

const active = (job: UploadJob) => job.state !== "done" && job.state !== "failed" && job.state !== "cancelled";

export function UploadPanel() {
	const userId = user.value?.id;
	const [collapsed, setCollapsed] = useState(false);
	useEffect(() => {
		if (userId !== undefined) void loadResumable(userId, runningUploadIds());
	}, [userId]);
	const jobs = uploads.value;
	const left = resumable.value;
	if (jobs.length === 0 && left.length === 0) return null;
	const counted = jobs.filter((job) => job.state !== "cancelled");
	const total = counted.reduce((n, job) => n + job.size, 0);
	const done = counted.reduce((n, job) => n + (job.size * job.percent) / 100, 0);
	const totalPercent = total === 0 ? (counted.every((job) => job.state === "done") ? 100 : 0) : Math.floor((100 * done) / total);
	const running = jobs.filter(active).length;
	const finished = jobs.filter((job) => job.state === "done").length;
	return (
		<aside class="uploads" aria-label="Uploads">
			<header>
				<h2>{running > 0 ? `Uploading ${running} ${running === 1 ? "file" : "files"}` : "Uploads"}</h2>
				<button type="button" class="link" aria-expanded={!collapsed} onClick={() => setCollapsed(!collapsed)}>
					{collapsed ? "Show" : "Hide"}
				</button>
			</header>
			{jobs.length > 0 && (
				<div class="upload-total">
					<progress max={100} value={totalPercent} aria-valuenow={totalPercent} aria-label="Total upload progress" />
					<span>
						{finished} of {counted.length} done
					</span>
					{running > 0 ? (
						<button type="button" onClick={cancelAll}>
							Cancel all
						</button>
					) : (
						<button type="button" onClick={clearFinished}>
							Clear
						</button>
					)}
				</div>
			)}
			{!collapsed && (
				<ul class="upload-list">
					{left.map((record) => (
						<ResumeRow key={record.uploadId} record={record} />
					))}
					{jobs.map((job) => (
						<JobRow key={job.id} job={job} />
					))}
				</ul>
			)}
		</aside>
	);
}

function JobRow({ job }: { job: UploadJob }) {
	const where = job.relativeDir === "" ? "" : `${job.relativeDir}/`;
	return (
		<li class={`upload ${job.state}`}>
			<div class="upload-name">
				<span title={`${where}${job.name}`}>
					{where !== "" && <span class="muted">{where}</span>}
					{job.name}
				</span>
				<span class="muted">
					{STATE_TEXT[job.state]} · {formatBytes(job.size)}
				</span>
			</div>
			{active(job) && (
				<progress
					max={100}
					value={job.percent}
					aria-valuenow={job.percent}
					aria-valuetext={`${job.percent}%, ${STATE_TEXT[job.state].toLowerCase()}`}
					aria-label={`Uploading ${job.name}`}
				/>
			)}
			<Alert text={job.error ?? null} />
			{active(job) && (
				<button type="button" class="icon" aria-label={`Cancel ${job.name}`} onClick={job.cancel}>
					×
				</button>
			)}
		</li>
	);
}

function ResumeRow({ record }: { record: Resumable }) {
	const input = useRef<HTMLInputElement>(null);
	return (
		<li class="upload resumable">
			<div class="upload-name">
				<span>{record.name}</span>
				<span class="muted">Interrupted · {formatBytes(record.size)}</span>
			</div>
			<button type="button" onClick={() => input.current?.click()}>
				Resume {record.name} — choose the file again
			</button>
			<button
				type="button"
				class="icon"
				aria-label={`Discard ${record.name}`}
				onClick={() => {
					void forget(record.uploadId);
					void call("DELETE", `/v1/uploads/${encodeURIComponent(record.uploadId)}`, { retries: 1 }).catch(() => undefined);
				}}
			>
				×
			</button>
			<input
				ref={input}
				type="file"
				hidden
				tabIndex={-1}
				aria-hidden="true"
				onChange={(event) => {
					const file = event.currentTarget.files?.[0];
					event.currentTarget.value = "";
					if (file === undefined) return;
					if (resumeUpload(record, file)) {
						resumable.value = resumable.value.filter((r) => r.uploadId !== record.uploadId);
					} else {
						notify(
							`That is not the same file. Choose “${record.name}” (${formatBytes(record.size)}) as it was when the upload started.`,
							"error",
						);
					}
				}}
			/>
		</li>
	);
}
