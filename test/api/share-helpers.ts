/** Fixtures for sharing tests: users on different shards, a share, a member's journal and mount. */
import { env } from "cloudflare:workers";
import type { ChangeEntry } from "../../src/shared/schemas/sync";
import { api, call, expectJson, signup, type TestUser } from "./helpers";

async function shardOf(user: TestUser): Promise<number> {
	const row = await env.DIRECTORY.prepare("SELECT shard FROM users WHERE id = ?").bind(user.id).first<{ shard: number }>();
	return row?.shard ?? -1;
}

/** Users on pairwise different shards (placement is by id, so signing up again lands elsewhere). */
export async function usersOnDifferentShards(count: number): Promise<TestUser[]> {
	const users: TestUser[] = [];
	const taken = new Set<number>();
	for (let tries = 0; users.length < count && tries < 200; tries++) {
		const user = await signup(`Laptop ${users.length}`);
		const shard = await shardOf(user);
		if (taken.has(shard)) continue;
		taken.add(shard);
		users.push(user);
	}
	if (users.length < count) throw new Error("could not place users on different shards");
	return users;
}

export async function share(owner: TestUser, nodeId: string, members: { user: TestUser; role: "viewer" | "editor" }[]) {
	const res = await call("/v1/shares", {
		method: "POST",
		token: owner.token,
		body: JSON.stringify({ node_id: nodeId, members: members.map((m) => ({ email: m.user.email, role: m.role })) }),
	});
	return expectJson<{ id: string; members: { user: { id: string } }[] }>(res, 201);
}

/** The user's whole journal, waiting (long poll, no clock) until `done` holds for it. */
export async function journalUntil(user: TestUser, done: (entries: ChangeEntry[]) => boolean): Promise<ChangeEntry[]> {
	const entries: ChangeEntry[] = [];
	let cursor: string | null = null;
	for (let round = 0; round < 200; round++) {
		const page = await api.page(user, cursor, 500);
		entries.push(...page.entries);
		cursor = page.cursor;
		if (done(entries)) return entries;
		if (!page.has_more) await api.longpoll(user, cursor, 5);
	}
	throw new Error(`the journal never got there: ${JSON.stringify(entries.map((e) => [e.kind, e.node.name, e.reason]))}`);
}

export function mountIn(entries: ChangeEntry[]) {
	const found = entries.find((e) => e.node.mount !== undefined);
	if (!found) throw new Error("no mount in the journal");
	return found.node;
}
