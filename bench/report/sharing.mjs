// The sharing section: an owner's change reaching members' devices, and an editor's commit beside the owner's.
import { mark, measuredLine, msec, table } from "./format.mjs";

/** Targets from the issue (13). */
const TARGETS = { memberP99Ms: 150, editorOverOwner: 1.5 };

const ratio = (v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "n/a");

/** The sharing section from its figures (scenarios/sharing.mjs): its markdown and verdicts. */
export function render(f, meta) {
	const s = f.settings;
	const fo = f.fanout;
	const fe = f.fetching;
	const c = f.commits;
	const memberOk = fo.member.fromSend.n > 0 && fo.missed === 0 ? fo.member.fromSend.p99 <= TARGETS.memberP99Ms : false;
	const editorOk = c.ratio.median <= TARGETS.editorOverOwner;
	const p = f.placement;
	/** A row of latencies from the PUT's send, with those from its answer beside them where measured. */
	const latencyRow = (label, fromSend, fromAnswer, target = "") => [
		label,
		fromSend.n,
		msec(fromSend.p50),
		msec(fromSend.p99),
		msec(fromSend.max),
		fromAnswer ? `${msec(fromAnswer.p50)} / ${msec(fromAnswer.p99)}` : "–",
		target,
	];
	const fanoutRows = [
		latencyRow(
			`member devices (${s.members} members × ${s.devicesPerMember})`,
			fo.member.fromSend,
			fo.member.fromAnswer,
			`${mark(memberOk)} p99 ≤ ${TARGETS.memberP99Ms} ms`,
		),
		latencyRow(`baseline: the owner's own devices (${s.devicesPerMember}), same commits`, fo.owner.fromSend, fo.owner.fromAnswer),
		latencyRow("the last member device of each change", fo.lastMemberDevice, null, "(reported)"),
		[
			"a member device's frame − the owner's first frame, same commit",
			fo.behindOwner.n,
			msec(fo.behindOwner.p50),
			msec(fo.behindOwner.p99),
			msec(fo.behindOwner.max),
			"–",
			"(reported)",
		],
	];
	const fetchRows = [
		latencyRow("member devices", fe.member.fromSend, fe.member.fromAnswer),
		latencyRow("baseline: the owner's own devices", fe.owner.fromSend, fe.owner.fromAnswer),
		latencyRow("a member's first device: `GET /v1/changes` after its frame returns the entry", fe.fetched.fromSend, fe.fetched.fromAnswer),
	];
	const commitRows = [
		["owner's own commit (baseline)", c.pairs, msec(c.owner.p50), msec(c.owner.p99), msec(c.owner.max), "", ""],
		[
			"editor's commit through the owner's hub",
			c.pairs,
			msec(c.editor.p50),
			msec(c.editor.p99),
			msec(c.editor.max),
			`${ratio(c.ratio.median)} (ratio of the medians ${ratio(c.ratio.ofMedians)}; of the p99s ${ratio(c.editor.p99 / c.owner.p99)})`,
			`${mark(editorOk)} ≤ ${TARGETS.editorOverOwner}× the owner's`,
		],
		[
			"reported: the owner's commit into a folder nobody shares, same rounds",
			c.pairs,
			msec(c.private.p50),
			msec(c.private.p99),
			msec(c.private.max),
			`owner's shared ÷ this: ${ratio(c.sharedOverPrivate.median)} (of the medians ${ratio(c.sharedOverPrivate.ofMedians)}); editor's ÷ this, of the medians: ${ratio(c.editor.p50 / c.private.p50)}`,
			"",
		],
		["editor − owner, each pair", c.pairs, msec(c.extra.p50), msec(c.extra.p99), msec(c.extra.max), "", "(reported)"],
	];
	const markdown = `## Sharing

${measuredLine(meta)}

One owner shares a folder with ${s.members} members (one editor, the rest viewers); every member was signed up until its shard (FNV-1a of its id mod ${s.shards}) differed from the owner's: owner on shard ${p.owner}, members on ${p.members.join(", ")} (${p.signups} signups). The owner has ${s.devicesPerMember} devices with sync sockets and commits from a third without one; each member has ${s.devicesPerMember} devices with sockets. From one Node process, on the client's clock.

### Owner's change → \`changes\` frame on every member's device

${fo.changes} owner commits, each a \`PUT /v1/files/content\` of a 16-byte new file into the shared folder, ≥ ${s.spacingMs} ms apart so that no hub's coalescing (4 frames/s) merges two. Afterwards each user's journal (\`GET /v1/changes\`) gives the seq the change got there, and a device saw the change when the first \`changes\` frame whose cursor is at or past that seq arrived. A member's frames come from the member's own hub, once the owner's hub has delivered the change into the member's journal (after the owner's batch, outside its queue). Latency is from the owner's PUT being sent, the whole path (the verdict), and from its answer reaching the owner (negative when the frame overtakes it). The baseline is the owner's own two devices hearing of the same commits.${fo.missed > 0 ? ` **${fo.missed} device-changes never got a covering frame.**` : ""}

${table(["devices", "frames", "PUT sent → frame p50", "p99", "max", "PUT answer → frame p50 / p99", "target"], fanoutRows, ["l", "r", "r", "r", "r", "r", "l"])}

The PUT's own round trip took p50 ${msec(fo.answer.p50)}, p99 ${msec(fo.answer.p99)}. The runtime (our workers, every hub, the D1 and R2 simulators: one thread, bench/README.md) spent ${msec(fo.runtimeCpuMsPerChange)} of CPU per change. Baseline: ${f.privateChanges.changes} of the same commits into a folder nobody shares, as far apart, cost ${msec(f.privateChanges.runtimeCpuMsPerChange)} of runtime CPU each, their PUT round trip p50 ${msec(f.privateChanges.answer.p50)}, p99 ${msec(f.privateChanges.answer.p99)}. So each member's delivery (the owner's hub reading the outbox, the call to the member's hub, its journal batch, the frames to its devices, the owner's hub recording it delivered) cost about ${msec((fo.runtimeCpuMsPerChange - f.privateChanges.runtimeCpuMsPerChange) / s.members)} of runtime CPU per change; on this one-thread runtime the owner's answer and every member's frame wait behind the deliveries of all ${s.members}.

Then ${fe.changes} more commits the same way, but each member's first device fetches \`GET /v1/changes\` from its cursor as soon as its frame arrives, as a client does (measured apart because those fetches land while the owner's PUT is still answering). The last row is from the PUT to the fetch's answer with the entry in it (frame → entry p50 ${msec(fe.fetched.fromFrame.p50)}, p99 ${msec(fe.fetched.fromFrame.p99)}); its PUT round trip took p50 ${msec(fe.answer.p50)}, p99 ${msec(fe.answer.p99)}.${fe.missed > 0 ? ` **${fe.missed} device-changes never got a covering frame.**` : ""}

${table(["devices", "samples", "PUT sent → p50", "p99", "max", "PUT answer → p50 / p99", ""], fetchRows, ["l", "r", "r", "r", "r", "r", "l"])}

### An editor's commit through the owner's hub, beside the owner's own

${c.pairs} pairs of \`PUT /v1/files/content\` of ${s.pairBytes / 1024} KiB fresh bytes as a new file into the shared folder: the owner's with the folder as \`parent_id\`, the editor's (another shard) with its mount; the order alternates each pair. Each round also has the owner's PUT of the same size into a folder nobody shares, at a rotating place in the round, to show what the fan-out to the members costs the owner's own commit. After each PUT into the share the bench waits until every member device has its frame, then ${s.pairGapMs} ms more (after a PUT into the unshared folder only the pause), so that no commit's fan-out to the ${s.members} members overlaps the next commit, and 4 unmeasured rounds warm every path first. The verdict is the median of each pair's ratio (bench/README.md, "Paired ratios").

${table(["commit", "pairs", "p50", "p99", "max", "editor ÷ owner (median of pairs)", "target"], commitRows, ["l", "r", "r", "r", "r", "r", "l"])}
`;
	const verdicts = [
		{
			section: "sharing",
			figure: "owner's change (PUT sent) → member device frame, p99",
			value: msec(fo.member.fromSend.p99),
			target: `≤ ${TARGETS.memberP99Ms} ms`,
			ok: memberOk,
		},
		{
			section: "sharing",
			figure: "editor's commit ÷ owner's (median of pairs)",
			value: ratio(c.ratio.median),
			target: `≤ ${TARGETS.editorOverOwner}×`,
			ok: editorOk,
		},
	];
	return { markdown, verdicts };
}
