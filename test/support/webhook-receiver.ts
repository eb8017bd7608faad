/// <reference types="node" />
/**
 * A webhook receiver on 127.0.0.1 for the tests, and a trap that only counts
 * connections. Each test uses its own path (`/hook/<name>`); answers are
 * scripted per path (default 200). Tests inside workerd reach it over HTTP:
 * `POST /_control/<name>/script` sets the answers, `GET
 * /_control/<name>/received?count=N` waits for N requests and returns them,
 * and `GET /_control/trap` returns the trap's connection count.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";

export interface Scripted {
	status: number;
	headers?: Record<string, string>;
	body?: string;
}

export interface Received {
	headers: Record<string, string>;
	/** The raw body, exactly as sent (signatures cover these bytes). */
	body: string;
	at: number;
}

/** Hang guard for a wait on requests: generous, so a loaded machine is never why a test fails. */
const WAIT_GUARD_MS = 120_000;

async function bodyOf(req: IncomingMessage): Promise<string> {
	const chunks: Buffer[] = [];
	for await (const chunk of req) chunks.push(chunk as Buffer);
	return Buffer.concat(chunks).toString("utf8");
}

export class WebhookReceiver {
	readonly #received = new Map<string, Received[]>();
	readonly #scripts = new Map<string, Scripted[]>();
	readonly #waiters = new Set<() => void>();
	#server: Server | null = null;
	#trap: Server | null = null;
	#trapSockets: Socket[] = [];
	trapConnections = 0;
	url = "";
	trapUrl = "";
	trapPort = 0;

	async start(): Promise<this> {
		this.#server = createServer((req, res) => {
			void this.#handle(req).then(
				(out) => {
					res.writeHead(out.status, out.headers ?? {});
					res.end(out.body ?? "");
				},
				(err: unknown) => {
					res.writeHead(500);
					res.end(String(err));
				},
			);
		});
		// The trap answers nothing: a connection is already the failure it counts.
		this.#trap = createServer();
		this.#trap.on("connection", (socket) => {
			this.trapConnections++;
			this.#trapSockets.push(socket);
		});
		const listen = (server: Server) =>
			new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as AddressInfo).port)));
		this.url = `http://127.0.0.1:${await listen(this.#server)}`;
		this.trapPort = await listen(this.#trap);
		this.trapUrl = `http://127.0.0.1:${this.trapPort}`;
		return this;
	}

	async stop(): Promise<void> {
		for (const socket of this.#trapSockets) socket.destroy();
		await Promise.all([this.#server, this.#trap].map((s) => new Promise((resolve) => (s ? s.close(resolve) : resolve(null)))));
		this.#server?.closeAllConnections();
	}

	/** The URL of a path of its own. */
	hook(name: string): string {
		return `${this.url}/hook/${name}`;
	}

	/** The next answers to requests on `name`, in order; after them, 200. */
	script(name: string, answers: Scripted[]): void {
		this.#scripts.set(name, [...answers]);
	}

	requests(name: string): Received[] {
		return this.#received.get(name) ?? [];
	}

	/** Waits until `name` has had `count` requests; returns them. */
	async received(name: string, count: number): Promise<Received[]> {
		const deadline = Date.now() + WAIT_GUARD_MS;
		while (this.requests(name).length < count) {
			if (Date.now() > deadline)
				throw new Error(`webhook receiver: ${this.requests(name).length} of ${count} requests on ${name} (hang guard)`);
			await new Promise<void>((resolve) => {
				const timer = setTimeout(resolve, 1_000);
				this.#waiters.add(() => {
					clearTimeout(timer);
					resolve();
				});
			});
		}
		return this.requests(name).slice(0, count);
	}

	async #handle(req: IncomingMessage): Promise<Scripted> {
		const url = new URL(req.url ?? "/", this.url);
		const body = await bodyOf(req);
		const hook = /^\/hook\/([\w-]+)$/.exec(url.pathname);
		if (hook?.[1] && req.method === "POST") {
			const name = hook[1];
			const headers: Record<string, string> = {};
			for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
			this.#received.set(name, [...this.requests(name), { headers, body, at: Date.now() }]);
			for (const wake of this.#waiters) wake();
			this.#waiters.clear();
			return this.#scripts.get(name)?.shift() ?? { status: 200, body: "ok" };
		}
		const control = /^\/_control\/([\w-]+)\/(script|received)$/.exec(url.pathname);
		if (control?.[1] && control[2] === "script") {
			this.script(control[1], JSON.parse(body) as Scripted[]);
			return { status: 204 };
		}
		if (control?.[1] && control[2] === "received") {
			const got = await this.received(control[1], Number(url.searchParams.get("count") ?? 1));
			return { status: 200, headers: { "content-type": "application/json" }, body: JSON.stringify(got) };
		}
		if (url.pathname === "/_control/trap")
			return { status: 200, body: JSON.stringify({ connections: this.trapConnections, port: this.trapPort }) };
		return { status: 404 };
	}
}
