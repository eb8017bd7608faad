/**
 * The seeded op scripts of the randomized two-client sync test
 * (test/e2e/sync-random.e2e.test.ts): pure and deterministic, so a seed
 * always gives the same script (the script, not the timing of its run).
 *
 * Three writers change one tree: the local folders of clients A and B and
 * the API. The generator keeps a model of the tree as the script means it.
 * Between two waits for quiescence (a "window") the writers do not see each
 * other's changes yet, so a writer only targets what it can see: nodes that
 * existed at the window's start and were not moved by another writer since,
 * or that it made itself. A path freed in a window (moved away, deleted) is
 * not taken again in the same window, so a stale writer never mistakes one
 * node for another. Ops that meet a different world when applied (a parent
 * gone, a name taken) are skipped and reported as such.
 *
 * Names of siblings never differ only in case (the server's names are
 * case-insensitive); a case-only rename is an op of its own.
 *
 * @module
 */

export type Writer = "A" | "B" | "api";

/** Which writers are local folders. */
export const LOCAL_WRITERS = ["A", "B"] as const;

interface OpBase {
	/** Index in the script: names the op and seeds the content it writes. */
	i: number;
	w: Writer;
}

/** One change by one writer; `path`s are relative to the synced root, with `/`. */
export type Op =
	| (OpBase & { t: "create"; path: string; size: number; file: number })
	| (OpBase & { t: "edit"; path: string; size: number; file: number })
	| (OpBase & { t: "mkdir"; path: string; folder: number })
	| (OpBase & { t: "move"; kind: "rename" | "case" | "move"; from: string; to: string; node: number })
	| (OpBase & {
			t: "delete";
			path: string;
			node: number;
			/** The files this delete may take with it: those under it now, and those moved out from under it in this window (a stale writer still sees them there). */
			affects: number[];
			/** The node's folders, up to the root, when it was deleted. */
			ancestors: number[];
	  });

/** Ops applied in the same tick (a concurrent edit, an edit against a delete), or a single op. */
export type Step = Op[];

export interface Batch {
	steps: Step[];
	/** Wait for quiescence after this batch (ends the window). */
	quiesce: boolean;
	/** Drop the proxy before this batch and restore it after. */
	drop: boolean;
}

export interface Script {
	seed: number;
	batches: Batch[];
	/** The op (a large file created by A or B) during whose upload that client is killed, or null. */
	killAt: number | null;
	/** The model's files still alive after the last op. */
	alive: number[];
}

export interface ScriptOptions {
	seed: number;
	/** Ops to generate (pairs count as two). */
	ops: number;
	writers?: readonly Writer[];
	/** Allow files of 6–12 MiB (upload sessions) now and then; the kill target is always one. */
	large?: boolean;
	/** Plan the SIGKILL and the proxy drop. */
	faults?: boolean;
	/** Probability that a batch ends with a wait for quiescence (the last one always does). */
	quiesce?: number;
	/** Largest number of steps per batch. */
	batchSteps?: number;
	/** The model to start from (a tree that exists already, e.g. after a base was synced). */
	from?: Model;
}

/** Small deterministic PRNG (mulberry32): the only source of randomness of a script. */
export class Prng {
	#state: number;
	constructor(seed: number) {
		this.#state = seed >>> 0;
	}
	/** Uniform in [0, 1). */
	next(): number {
		this.#state = (this.#state + 0x6d2b79f5) >>> 0;
		let t = this.#state;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	}
	/** Integer in [0, n). */
	int(n: number): number {
		return Math.floor(this.next() * n);
	}
	chance(p: number): boolean {
		return this.next() < p;
	}
	pick<T>(items: readonly T[]): T {
		if (items.length === 0) throw new Error("pick from nothing");
		return items[this.int(items.length)] as T;
	}
}

export const MiB = 1024 * 1024;
const FILE_NAMES = [
	"notes.txt",
	"report.pdf",
	"photo.jpg",
	"data.bin",
	"readme.md",
	"todo.txt",
	"Draft.doc",
	"song.mp3",
	"a.txt",
	"Budget 2026.xlsx",
	"x",
	".env",
];
const FOLDER_NAMES = ["docs", "photos", "Work", "archive", "misc", "Projects", "tmp", "2026"];

interface MNode {
	id: number;
	type: "file" | "folder";
	name: string;
	parent: number;
	alive: boolean;
	born: { window: number; by: Writer | null };
	moved: { window: number; by: Writer } | null;
}

const key = (name: string): string => name.toLowerCase();

/** The tree as the script means it. */
export class Model {
	readonly nodes = new Map<number, MNode>();
	window = 0;
	#nextId = 1;
	/** Lower-cased paths freed in this window. */
	#freed = new Set<string>();
	/** Per folder: files moved out from under it in this window. */
	#movedOut = new Map<number, Set<number>>();

	constructor() {
		this.nodes.set(0, { id: 0, type: "folder", name: "", parent: -1, alive: true, born: { window: -1, by: null }, moved: null });
	}

	/** Ends the window: everyone has seen everything. */
	endWindow(): void {
		this.window++;
		this.#freed.clear();
		this.#movedOut.clear();
	}

	path(id: number): string {
		const parts: string[] = [];
		for (let n = this.nodes.get(id); n !== undefined && n.id !== 0; n = this.nodes.get(n.parent)) parts.unshift(n.name);
		return parts.join("/");
	}

	alive(type?: "file" | "folder"): MNode[] {
		return [...this.nodes.values()].filter((n) => n.alive && n.id !== 0 && (type === undefined || n.type === type));
	}

	/** Live folders, the root included. */
	folders(): MNode[] {
		return [...this.nodes.values()].filter((n) => n.alive && n.type === "folder");
	}

	children(id: number): MNode[] {
		return [...this.nodes.values()].filter((n) => n.alive && n.parent === id);
	}

	/** Files under `id` (itself if a file). */
	files(id: number): number[] {
		const n = this.nodes.get(id);
		if (n === undefined || !n.alive) return [];
		if (n.type === "file") return [id];
		return this.children(id).flatMap((c) => this.files(c.id));
	}

	ancestors(id: number): number[] {
		const out: number[] = [];
		for (let n = this.nodes.get(this.nodes.get(id)?.parent ?? -1); n !== undefined; n = this.nodes.get(n.parent)) out.push(n.id);
		return out;
	}

	/** Whether `w` sees `id` where the model has it. */
	visible(id: number, w: Writer): boolean {
		for (let n = this.nodes.get(id); n !== undefined && n.id !== 0; n = this.nodes.get(n.parent)) {
			if (!n.alive) return false;
			if (n.born.window === this.window && n.born.by !== w) return false;
			if (n.moved !== null && n.moved.window === this.window && n.moved.by !== w) return false;
		}
		return true;
	}

	/** Whether `name` can be given to a child of `parent` (`self` keeps its own name's key). */
	free(parent: number, name: string, self?: number): boolean {
		if (this.children(parent).some((c) => c.id !== self && key(c.name) === key(name))) return false;
		const path = key(parent === 0 ? name : `${this.path(parent)}/${name}`);
		for (const freed of this.#freed) if (path === freed || path.startsWith(`${freed}/`)) return false;
		return true;
	}

	add(type: "file" | "folder", parent: number, name: string, by: Writer): number {
		const id = this.#nextId++;
		this.nodes.set(id, { id, type, name, parent, alive: true, born: { window: this.window, by }, moved: null });
		return id;
	}

	move(id: number, parent: number, name: string, by: Writer): void {
		const n = this.nodes.get(id) as MNode;
		const caseOnly = parent === n.parent && key(name) === key(n.name);
		if (!caseOnly) {
			this.#freed.add(key(this.path(id)));
			const files = this.files(id);
			for (const a of this.ancestors(id)) {
				const set = this.#movedOut.get(a) ?? new Set<number>();
				for (const f of files) set.add(f);
				this.#movedOut.set(a, set);
			}
		}
		n.parent = parent;
		n.name = name;
		n.moved = { window: this.window, by };
	}

	/** Deletes `id` with its subtree; answers the files it may take with it (see {@link Op}). */
	delete(id: number): number[] {
		const affects = new Set([...this.files(id), ...(this.#movedOut.get(id) ?? [])]);
		this.#freed.add(key(this.path(id)));
		const kill = (n: number): void => {
			for (const c of this.children(n)) kill(c.id);
			(this.nodes.get(n) as MNode).alive = false;
		};
		kill(id);
		return [...affects].sort((a, b) => a - b);
	}

	/** A name for a new child of `parent`, or undefined if the few tries all collide. */
	newName(rng: Prng, parent: number, type: "file" | "folder"): string | undefined {
		for (let tries = 0; tries < 8; tries++) {
			let name = rng.pick(type === "file" ? FILE_NAMES : FOLDER_NAMES);
			if (rng.chance(0.4)) {
				const dot = name.lastIndexOf(".");
				const suffix = ` ${rng.int(50)}`;
				name = dot > 0 ? `${name.slice(0, dot)}${suffix}${name.slice(dot)}` : `${name}${suffix}`;
			}
			if (this.free(parent, name)) return name;
		}
		return undefined;
	}
}

/** Generates the script of `options.seed`. */
export function generateScript(options: ScriptOptions): Script {
	const rng = new Prng(options.seed);
	const writers = options.writers ?? ["A", "B", "api"];
	const locals = writers.filter((w) => w !== "api");
	const model = options.from ?? new Model();
	const quiesce = options.quiesce ?? 0.5;
	const batchSteps = options.batchSteps ?? 4;
	const faults = options.faults ?? false;
	let i = 0;
	const batches: Batch[] = [];
	let killAt: number | null = null;
	// The kill comes a third of the way in, the drop in the second half.
	const killIndex = faults && locals.length > 0 ? Math.floor(options.ops / 3) : -1;
	let dropPlanned = !faults;

	const size = (allowLarge: boolean): number =>
		allowLarge && rng.chance(0.03) ? 6 * MiB + rng.int(6 * MiB) : 1024 + rng.int(15 * 1024 + 1);

	const create = (w: Writer, large: boolean): Op | undefined => {
		const parents = model.folders().filter((f) => model.visible(f.id, w));
		const parent = rng.pick(parents);
		const name = model.newName(rng, parent.id, "file");
		if (name === undefined) return undefined;
		const file = model.add("file", parent.id, name, w);
		return {
			i: i++,
			w,
			t: "create",
			path: model.path(file),
			size: large ? 6 * MiB + rng.int(6 * MiB) : size(options.large ?? false),
			file,
		};
	};

	const oneOp = (w: Writer): Op | undefined => {
		const roll = rng.next();
		const files = model.alive("file").filter((n) => model.visible(n.id, w));
		const nodes = model.alive().filter((n) => model.visible(n.id, w));
		if (roll < 0.3 || nodes.length === 0) return create(w, false);
		if (roll < 0.55) {
			if (files.length === 0) return create(w, false);
			const f = rng.pick(files);
			return { i: i++, w, t: "edit", path: model.path(f.id), size: size(options.large ?? false), file: f.id };
		}
		if (roll < 0.65) {
			const n = rng.pick(nodes);
			const from = model.path(n.id);
			if (rng.chance(0.35)) {
				const upper = n.name.toUpperCase();
				const name = upper !== n.name ? upper : n.name.toLowerCase();
				if (name === n.name) return undefined;
				model.move(n.id, n.parent, name, w);
				return { i: i++, w, t: "move", kind: "case", from, to: model.path(n.id), node: n.id };
			}
			const name = model.newName(rng, n.parent, n.type);
			if (name === undefined) return undefined;
			model.move(n.id, n.parent, name, w);
			return { i: i++, w, t: "move", kind: "rename", from, to: model.path(n.id), node: n.id };
		}
		if (roll < 0.75) {
			const n = rng.pick(nodes);
			const below = new Set(
				n.type === "folder"
					? [
							n.id,
							...model
								.alive()
								.filter((m) => model.ancestors(m.id).includes(n.id))
								.map((m) => m.id),
						]
					: [],
			);
			const targets = model
				.folders()
				.filter((f) => f.id !== n.parent && !below.has(f.id) && model.visible(f.id, w) && model.free(f.id, n.name));
			if (targets.length === 0) return undefined;
			const from = model.path(n.id);
			model.move(n.id, rng.pick(targets).id, n.name, w);
			return { i: i++, w, t: "move", kind: "move", from, to: model.path(n.id), node: n.id };
		}
		if (roll < 0.85) {
			const parent = rng.pick(model.folders().filter((f) => model.visible(f.id, w)));
			const name = model.newName(rng, parent.id, "folder");
			if (name === undefined) return undefined;
			const folder = model.add("folder", parent.id, name, w);
			return { i: i++, w, t: "mkdir", path: model.path(folder), folder };
		}
		// Deletes of folders are rarer: they take a subtree.
		const victims = nodes.filter((n) => n.type === "file" || rng.chance(0.3));
		if (victims.length === 0) return undefined;
		const n = rng.pick(victims);
		const path = model.path(n.id);
		const ancestors = model.ancestors(n.id);
		return { i: i++, w, t: "delete", path, node: n.id, ancestors, affects: model.delete(n.id) };
	};

	/** Two writers on one file at once: two edits, or an edit against a delete. */
	const pair = (): Step | undefined => {
		const [w1, w2] = rng.chance(0.5) ? [locals[0], locals[1] ?? writers.find((w) => w !== locals[0])] : [locals[1], locals[0]];
		if (w1 === undefined || w2 === undefined) return undefined;
		const files = model.alive("file").filter((n) => model.visible(n.id, w1) && model.visible(n.id, w2));
		if (files.length === 0) return undefined;
		const f = rng.pick(files);
		const path = model.path(f.id);
		const edit: Op = { i: i++, w: w1, t: "edit", path, size: size(false), file: f.id };
		if (rng.chance(0.6)) return [edit, { i: i++, w: w2, t: "edit", path, size: size(false), file: f.id }];
		const deleter = rng.chance(0.3) && writers.includes("api") ? "api" : w2;
		const ancestors = model.ancestors(f.id);
		return [edit, { i: i++, w: deleter, t: "delete", path, node: f.id, ancestors, affects: model.delete(f.id) }];
	};

	for (let rounds = 0; i < options.ops; rounds++) {
		if (rounds > options.ops * 10) throw new Error(`seed ${options.seed}: the generator is stuck`);
		const steps: Step[] = [];
		const want = 1 + rng.int(batchSteps);
		let drop = false;
		// Not in the kill's batch: the killed client's upload must be able to start.
		if (!dropPlanned && i >= options.ops / 2 && (killAt !== null || killIndex < 0)) {
			drop = true;
			dropPlanned = true;
		}
		for (let s = 0; s < want && i < options.ops; s++) {
			if (killAt === null && killIndex >= 0 && i >= killIndex) {
				const op = create(rng.pick(locals), true);
				if (op !== undefined) {
					killAt = op.i;
					steps.push([op]);
					continue;
				}
			}
			if (locals.length === 2 && rng.chance(0.12)) {
				const step = pair();
				if (step !== undefined) {
					steps.push(step);
					continue;
				}
			}
			const op = oneOp(rng.pick(writers));
			if (op !== undefined) steps.push([op]);
		}
		const last = i >= options.ops;
		const q = last || rng.chance(quiesce);
		batches.push({ steps, quiesce: q, drop });
		if (q) model.endWindow();
	}
	return { seed: options.seed, batches, killAt, alive: model.alive("file").map((n) => n.id) };
}

/** Every op of a script in order. */
export function opsOf(script: Script): Op[] {
	return script.batches.flatMap((b) => b.steps.flat());
}

/** The script as text, one op a line, for a failure message. */
export function formatScript(script: Script, outcome: Map<number, string> = new Map()): string {
	const lines = [`seed ${script.seed}, kill during #${script.killAt ?? "-"}`];
	script.batches.forEach((b, n) => {
		lines.push(`batch ${n}${b.drop ? " (proxy dropped)" : ""}${b.quiesce ? ", then quiescence" : ""}`);
		for (const step of b.steps) {
			const parts = step.map((op) => {
				const what =
					op.t === "move"
						? `${op.kind} ${op.from} -> ${op.to}`
						: op.t === "create" || op.t === "edit"
							? `${op.t} ${op.path} (${op.size} B)`
							: `${op.t} ${op.path}`;
				const result = outcome.get(op.i);
				return `#${op.i} ${op.w} ${what}${result === undefined ? "" : ` [${result}]`}`;
			});
			lines.push(`  ${parts.join("  ||  ")}`);
		}
	});
	return lines.join("\n");
}
