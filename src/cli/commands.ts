/// <reference types="node" />
/**
 * The `drive` commands: one commander command per verb, each a thin shell
 * over the API (docs/api.md) that prints its result through {@link Output}.
 *
 * @module
 */
import { Command, Option } from "commander";
import { hostname } from "node:os";
import { DriveApiError, DriveClient } from "../client";
import { nameKey } from "../shared/names";
import type { Session, Me } from "../shared/schemas/auth";
import type { Link } from "../shared/schemas/links";
import type { Node, Version, CommitResult } from "../shared/schemas/nodes";
import type { Share } from "../shared/schemas/shares";
import { configDir, readCredentials, removeCredentials, writeCredentials } from "./credentials";
import { CliError, EXIT, EXIT_HELP, formatBytes, type Output } from "./output";
import { Progress, progressMode } from "./progress";
import { childNamed, listAll, children, isNodeId, parentAndName, pathParts, resolve, resolveFolder } from "./remote";
import { notSignedIn, Tokens } from "./tokens";
import { registerSyncCommands } from "./sync";
import { getFile, putFile } from "./transfers";

const DEFAULT_SERVER = "http://127.0.0.1:8787";

/** Options every command takes. */
interface Common {
	json?: boolean;
	quiet?: boolean;
}

/** A signed-in client for a command. */
function signedIn(): { client: DriveClient; tokens: Tokens; dir: string } {
	const dir = configDir();
	const credentials = readCredentials(dir);
	if (credentials === undefined) throw notSignedIn();
	const debug = process.env.DRIVE_DEBUG ? (line: string) => process.stderr.write(`drive: debug: ${line}\n`) : undefined;
	const tokens = new Tokens(dir, credentials, debug);
	return { client: new DriveClient({ baseUrl: credentials.server, fetch: tokens.fetch }), tokens, dir };
}

/** Adds `--json` and `--quiet` to a command. */
function common(cmd: Command): Command {
	return cmd
		.option("--json", "print the result as one JSON document; errors as the API's error envelope and progress as NDJSON on stderr")
		.option("-q, --quiet", "no progress output");
}

function progressFor(label: string, opts: Common): Progress {
	return new Progress(progressMode(process.stderr, { json: opts.json === true, quiet: opts.quiet === true }), label);
}

/** One line per node, like `ls -l`: kind, size, modified time (UTC), name. */
function nodeLine(node: Node): string {
	const size = node.type === "folder" ? "-" : formatBytes(node.size ?? 0);
	const name = node.type === "folder" ? `${node.name}/` : node.name;
	const conflict = node.conflict_of === null ? "" : "  (conflicted copy)";
	return `${node.type === "folder" ? "d" : "-"} ${size.padStart(8)}  ${node.modified_at.slice(0, 19).replace("T", " ")}  ${name}${conflict}  ${node.id}`;
}

/** Reads stdin to its end: for `--password-stdin`. */
async function readStdin(): Promise<string> {
	const parts: Buffer[] = [];
	for await (const chunk of process.stdin) parts.push(chunk as Buffer);
	return Buffer.concat(parts)
		.toString("utf8")
		.replace(/\r?\n$/, "");
}

/** Asks on the terminal, with echo off for secrets. */
async function ask(question: string, secret: boolean): Promise<string> {
	const stdin = process.stdin;
	if (!stdin.isTTY)
		throw new CliError(
			"USAGE",
			`no terminal to ask for the ${question.replace(/: $/, "").toLowerCase()}: pass it as an option`,
			EXIT.usage,
		);
	process.stderr.write(question);
	stdin.setRawMode(true);
	stdin.resume();
	let answer = "";
	try {
		return await new Promise<string>((done, failed) => {
			const onData = (data: Buffer): void => {
				for (const ch of data.toString("utf8")) {
					if (ch === "\r" || ch === "\n") {
						stdin.off("data", onData);
						process.stderr.write("\n");
						done(answer);
						return;
					}
					if (ch === "\u0003") {
						stdin.off("data", onData);
						failed(new CliError("CANCELLED", "cancelled"));
						return;
					}
					if (ch === "\u007f") {
						if (answer.length > 0) {
							answer = answer.slice(0, -1);
							if (!secret) process.stderr.write("\b \b");
						}
						continue;
					}
					answer += ch;
					if (!secret) process.stderr.write(ch);
				}
			};
			stdin.on("data", onData);
		});
	} finally {
		stdin.setRawMode(false);
		stdin.pause();
	}
}

/** Builds the program; `out` prints results and errors. */
export function buildProgram(out: Output): Command {
	const program = new Command("drive")
		.description("Drive from the command line: files, folders, trash, versions, conflicts and shares.")
		.version("0.1.0")
		.exitOverride()
		.showHelpAfterError("(run drive --help for usage)")
		.addHelpText(
			"after",
			`${EXIT_HELP}
Environment:
  DRIVE_SERVER      server for drive login (default ${DEFAULT_SERVER})
  DRIVE_CONFIG_DIR  where credentials live (default $XDG_CONFIG_HOME/drive or ~/.config/drive)
  DRIVE_DEBUG=1     log token refreshes on stderr

Remote paths start at your root (/Docs/a.txt); a node id (nod_...) works wherever a path does.`,
		);
	if (out.json) program.configureOutput({ writeErr: () => {} });

	common(program.command("login"))
		.description("sign in and keep the credentials (never the password) in the config directory")
		.option("--server <url>", "the server's URL (default: $DRIVE_SERVER, else http://127.0.0.1:8787)")
		.option("--email <email>", "the account's email (asked when left out)")
		.option("--password-stdin", "read the password from stdin instead of asking")
		.option("--device <name>", "this device's name, shown in conflicted copies", `drive CLI on ${hostname()}`)
		.action(async (opts: Common & { server?: string; email?: string; passwordStdin?: boolean; device: string }) => {
			const server = (opts.server ?? process.env.DRIVE_SERVER ?? DEFAULT_SERVER).replace(/\/+$/, "");
			const email = opts.email ?? (await ask("Email: ", false));
			const password = opts.passwordStdin === true ? await readStdin() : await ask("Password: ", true);
			const client = new DriveClient({ baseUrl: server });
			const session = await client.json<Session>("POST", "/v1/auth/login", { json: { email, password, device_name: opts.device } });
			const dir = configDir();
			await signOutQuietly();
			writeCredentials(dir, {
				server,
				email: session.user.email,
				user_id: session.user.id,
				device_id: session.device_id,
				refresh_token: session.refresh_token,
				access_token: session.access_token,
				access_expires_at: Date.now() + session.expires_in * 1000,
			});
			out.result({ server, user: session.user, device_id: session.device_id }, () => `signed in to ${server} as ${session.user.email}`);
		});

	common(program.command("logout"))
		.description("sign this device out and forget its credentials")
		.action(async () => {
			const signedOut = await signOutQuietly();
			out.result({ signed_out: signedOut }, () => (signedOut ? "signed out" : "was not signed in"));
		});

	common(program.command("whoami"))
		.description("show the signed-in account, device and storage used")
		.action(async () => {
			const { client, tokens } = signedIn();
			const me = await client.json<Me>("GET", "/v1/me");
			const server = tokens.credentials.server;
			out.result(
				{ server, ...me },
				() =>
					`${me.user.email} on ${server}\ndevice ${me.device?.name ?? tokens.credentials.device_id}\n` +
					`${formatBytes(me.usage.bytes_used)} used of ${formatBytes(me.usage.quota_bytes)}`,
			);
		});

	common(program.command("ls"))
		.description("list a folder (default: the root), or show one file")
		.argument("[path]", "a remote path or node id", "/")
		.action(async (path: string) => {
			const { client } = signedIn();
			const node = await resolve(client, path);
			const items = node.type === "folder" ? await children(client, node.id) : [node];
			out.result({ node, items }, () => items.map(nodeLine).join("\n"));
		});

	common(program.command("mkdir"))
		.description("create a folder")
		.argument("<path>", "the new folder's path, e.g. /Docs/2026")
		.option("-p, --parents", "create missing parent folders too, and succeed if the folder exists")
		.action(async (path: string, opts: Common & { parents?: boolean }) => {
			const { client } = signedIn();
			let node: Node;
			if (opts.parents === true) {
				node = await client.json<Node>("GET", "/v1/nodes/root");
				for (const part of pathParts(path)) {
					const existing = await childNamed(client, node.id, part);
					if (existing !== undefined && existing.type !== "folder")
						throw new CliError("NAME_TAKEN", `a file named ${part} is in the way`, EXIT.conflict);
					node = existing ?? (await client.json<Node>("POST", "/v1/folders", { json: { parent_id: node.id, name: part } }));
				}
			} else {
				const { parent, name } = await parentAndName(client, path);
				node = await client.json<Node>("POST", "/v1/folders", { json: { parent_id: parent.id, name } });
			}
			out.result(node, () => nodeLine(node));
		});

	common(program.command("put"))
		.description("upload a file (only changed blocks are sent; an interrupted put resumes when run again)")
		.argument("<local>", "the local file")
		.argument("[remote-dir]", "the remote folder", "/")
		.action(async (local: string, remoteDir: string, opts: Common) => {
			const { client, dir } = signedIn();
			const parent = await resolveFolder(client, remoteDir);
			const progress = progressFor("put", opts);
			try {
				const result = await putFile(client, dir, local, parent, progress);
				const { uploadId, bytesSent, resumed, ...commit } = result;
				out.result({ ...commit, upload_id: uploadId, bytes_sent: bytesSent, resumed }, () => {
					const copy = commit.conflict === null ? "" : " (as a conflicted copy)";
					return `uploaded ${local} to ${parent.id === commit.node.parent_id ? remoteDir : "its folder"}${copy}: ${formatBytes(bytesSent)} sent of ${formatBytes(commit.node.size ?? 0)}`;
				});
			} catch (err) {
				progress.abandon();
				throw err;
			}
		});

	common(program.command("get"))
		.description("download a file (verified by its SHA-256; an interrupted get resumes when run again)")
		.argument("<remote>", "a remote path or node id")
		.argument("[local]", "where to write it (default: the file's name here; a directory gets the file's name)")
		.action(async (remote: string, local: string | undefined, opts: Common) => {
			const { client } = signedIn();
			const node = await resolve(client, remote);
			const progress = progressFor("get", opts);
			try {
				const result = await getFile(client, node, local, progress);
				out.result(result, () => `downloaded ${remote} to ${result.path} (${formatBytes(result.bytes)})`);
			} catch (err) {
				progress.abandon();
				throw err;
			}
		});

	common(program.command("mv"))
		.description("move or rename: into DEST if it is a folder, else to the path DEST")
		.argument("<source>", "a remote path or node id")
		.argument("<dest>", "a folder to move into, or a new path")
		.action(async (source: string, dest: string) => {
			const { client } = signedIn();
			const node = await resolve(client, source);
			const target = await resolve(client, dest).catch((err: unknown) => {
				if (err instanceof CliError && err.exit === EXIT.notFound) return undefined;
				throw err;
			});
			const patch =
				target !== undefined && target.type === "folder"
					? { parent_id: target.id }
					: await parentAndName(client, dest).then(({ parent, name }) => ({ parent_id: parent.id, name }));
			const moved = await client.json<Node>("PATCH", `/v1/nodes/${encodeURIComponent(node.id)}`, { json: patch });
			out.result(moved, () => nodeLine(moved));
		});

	common(program.command("rm"))
		.description("move files or folders to the trash")
		.argument("<paths...>", "remote paths or node ids")
		.action(async (paths: string[]) => {
			const { client } = signedIn();
			const trashed: Node[] = [];
			for (const path of paths) {
				const node = await resolve(client, path);
				trashed.push(await client.json<Node>("DELETE", `/v1/nodes/${encodeURIComponent(node.id)}`));
			}
			out.result({ items: trashed }, () => trashed.map((n) => `trashed ${n.name}  ${n.id}`).join("\n"));
		});

	const trash = program.command("trash").description("the trash: list it, or empty it");
	common(trash.command("list", { isDefault: true }))
		.description("list what is in the trash, newest first")
		.action(async () => {
			const { client } = signedIn();
			const items = await listAll<Node>(client, "/v1/trash");
			out.result({ items }, () => items.map(nodeLine).join("\n"));
		});
	common(trash.command("empty"))
		.description("delete everything in the trash for good")
		.action(async () => {
			const { client } = signedIn();
			const answer = await client.json<{ deleted: number }>("DELETE", "/v1/trash");
			out.result(answer, () => `deleted ${answer.deleted} item(s) for good`);
		});

	common(program.command("restore"))
		.description("bring items back from the trash")
		.argument("<items...>", "node ids, or names as the trash lists them")
		.action(async (items: string[]) => {
			const { client } = signedIn();
			const restored: Node[] = [];
			let trashList: Node[] | undefined;
			for (const item of items) {
				let id = item;
				if (!isNodeId(item)) {
					trashList ??= await listAll<Node>(client, "/v1/trash");
					const key = nameKey(pathParts(item).pop() ?? item);
					const matches = trashList.filter((n) => nameKey(n.name) === key);
					if (matches.length === 0) throw new CliError("NOT_FOUND", `nothing named ${item} in the trash`, EXIT.notFound);
					if (matches.length > 1)
						throw new CliError(
							"AMBIGUOUS",
							`${matches.length} items named ${item} in the trash: restore one by id`,
							EXIT.error,
							matches.map((n) => ({ node_id: n.id })),
						);
					id = (matches[0] as Node).id;
				}
				restored.push(await client.json<Node>("POST", `/v1/nodes/${encodeURIComponent(id)}/restore`));
			}
			out.result({ items: restored }, () => restored.map((n) => `restored ${n.name}  ${n.id}`).join("\n"));
		});

	const conflicts = program.command("conflicts").description("conflicted copies: list them, or resolve one");
	common(conflicts.command("list", { isDefault: true }))
		.description("list unresolved conflicted copies, newest first")
		.action(async () => {
			const { client } = signedIn();
			const items = await listAll<{ node: Node; conflicts_with: Node | null }>(client, "/v1/conflicts");
			out.result({ items }, () =>
				items.map((c) => `${nodeLine(c.node)}  (of ${c.conflicts_with?.name ?? "a file that is gone"})`).join("\n"),
			);
		});
	common(conflicts.command("resolve"))
		.description("resolve a conflicted copy")
		.argument("<copy>", "the conflicted copy's path or node id")
		.addOption(
			new Option("--keep <side>", "both: keep both files; original: trash the copy; copy: the copy's content wins")
				.choices(["both", "original", "copy"])
				.default("both"),
		)
		.action(async (copy: string, opts: Common & { keep: string }) => {
			const { client } = signedIn();
			const node = await resolve(client, copy);
			const kept = await client.json<Node>("POST", `/v1/conflicts/${encodeURIComponent(node.id)}/resolve`, { json: { keep: opts.keep } });
			out.result(kept, () => `kept ${nodeLine(kept)}`);
		});

	const versions = program.command("versions").description("a file's versions: list them, or restore one");
	common(versions.command("list", { isDefault: true }))
		.description("list a file's versions, newest first")
		.argument("<file>", "a remote path or node id")
		.action(async (file: string) => {
			const { client } = signedIn();
			const node = await resolve(client, file);
			const items = await listAll<Version>(client, `/v1/files/${encodeURIComponent(node.id)}/versions`);
			out.result({ node, items }, () =>
				items
					.map(
						(v) =>
							`${v.id}  ${v.created_at.slice(0, 19).replace("T", " ")}  ${formatBytes(v.size ?? 0).padStart(8)}${v.is_head ? "  (current)" : ""}`,
					)
					.join("\n"),
			);
		});
	common(versions.command("restore"))
		.description("make an earlier version the current one (it stays in the history)")
		.argument("<file>", "a remote path or node id")
		.argument("<version-id>", "the version to restore (ver_...)")
		.action(async (file: string, versionId: string) => {
			const { client } = signedIn();
			const node = await resolve(client, file);
			const result = await client.json<CommitResult>(
				"POST",
				`/v1/files/${encodeURIComponent(node.id)}/versions/${encodeURIComponent(versionId)}/restore`,
			);
			out.result(result, () => `restored ${versionId}: the current version is now ${result.version.id}`);
		});

	const share = program.command("share").description("sharing with people and public links");
	common(share.command("list", { isDefault: true }))
		.description("list your shares (of one item, when given)")
		.argument("[path]", "a remote path or node id")
		.action(async (path: string | undefined) => {
			const { client } = signedIn();
			const nodeId = path === undefined ? undefined : (await resolve(client, path)).id;
			const items = await listAll<Share>(client, "/v1/shares", nodeId === undefined ? {} : { node_id: nodeId });
			out.result({ items }, () => items.map(shareLine).join("\n"));
		});
	common(share.command("add"))
		.description("share a file or folder with people (or change their role)")
		.argument("<path>", "a remote path or node id")
		.argument("<emails...>", "the people's emails")
		.addOption(new Option("--role <role>", "what they may do").choices(["viewer", "editor"]).default("viewer"))
		.action(async (path: string, emails: string[], opts: Common & { role: string }) => {
			const { client } = signedIn();
			const node = await resolve(client, path);
			const made = await client.json<Share>("POST", "/v1/shares", {
				json: { node_id: node.id, members: emails.map((email) => ({ email, role: opts.role })) },
			});
			out.result(made, () => shareLine(made));
		});
	common(share.command("incoming"))
		.description("list what others share with you")
		.action(async () => {
			const { client } = signedIn();
			const answer = await client.json<{ items: { share_id: string; owner: { email: string }; role: string; name: string }[] }>(
				"GET",
				"/v1/shared-with-me",
			);
			out.result(answer, () => answer.items.map((s) => `${s.share_id}  ${s.role.padEnd(6)}  ${s.name}  from ${s.owner.email}`).join("\n"));
		});
	common(share.command("stop"))
		.description("end a share: every member loses it")
		.argument("<share-id>", "the share's id")
		.action(async (shareId: string) => {
			const { client } = signedIn();
			await client.send("DELETE", `/v1/shares/${encodeURIComponent(shareId)}`);
			out.result({ deleted: shareId }, () => `ended share ${shareId}`);
		});
	common(share.command("link"))
		.description("make a public link (its URL is shown once)")
		.argument("<path>", "a remote path or node id")
		.addOption(new Option("--access <access>", "what the link's holder may do").choices(["view", "upload", "view_upload"]).default("view"))
		.option("--expires <time>", "when it stops working (ISO-8601)")
		.option("--max-downloads <n>", "downloads allowed", (v) => Number.parseInt(v, 10))
		.option("--password-stdin", "protect it with a password read from stdin")
		.action(async (path: string, opts: Common & { access: string; expires?: string; maxDownloads?: number; passwordStdin?: boolean }) => {
			const { client } = signedIn();
			const node = await resolve(client, path);
			const body = {
				node_id: node.id,
				access: opts.access,
				expires_at: opts.expires,
				max_downloads: opts.maxDownloads,
				password: opts.passwordStdin === true ? await readStdin() : undefined,
			};
			const link = await client.json<Link & { url: string; token: string }>("POST", "/v1/links", { json: body });
			out.result(link, () => link.url);
		});
	common(share.command("links"))
		.description("list an item's public links")
		.argument("<path>", "a remote path or node id")
		.action(async (path: string) => {
			const { client } = signedIn();
			const node = await resolve(client, path);
			const items = await listAll<Link>(client, "/v1/links", { node_id: node.id });
			out.result({ items }, () =>
				items.map((l) => `${l.id}  ${l.access.padEnd(11)}  ${l.expires_at ?? "no expiry"}  ${l.download_count} download(s)`).join("\n"),
			);
		});
	common(share.command("unlink"))
		.description("revoke a public link for good")
		.argument("<link-id>", "the link's id")
		.action(async (linkId: string) => {
			const { client } = signedIn();
			await client.send("DELETE", `/v1/links/${encodeURIComponent(linkId)}`);
			out.result({ revoked: linkId }, () => `revoked ${linkId}`);
		});

	registerSyncCommands(program, { out, signedIn, common });

	return program;
}

function shareLine(share: Share): string {
	const members = share.members.map((m) => `${m.user.email} (${m.role})`).join(", ");
	return `${share.id}  ${share.node.name}  ${members === "" ? "no members" : members}`;
}

/**
 * Signs the stored device out (best effort: a server that is gone or has
 * already signed it out changes nothing here) and forgets the credentials.
 * @returns whether there were credentials.
 */
async function signOutQuietly(): Promise<boolean> {
	const dir = configDir();
	const credentials = readCredentials(dir);
	if (credentials === undefined) return false;
	try {
		const tokens = new Tokens(dir, credentials);
		await new DriveClient({ baseUrl: credentials.server, fetch: tokens.fetch, retries: 1 }).send("POST", "/v1/auth/logout");
	} catch (err) {
		if (!(err instanceof DriveApiError) && !(err instanceof CliError))
			process.stderr.write(`drive: could not reach ${credentials.server} to sign out; forgetting the credentials anyway\n`);
	}
	removeCredentials(dir);
	return true;
}
