/// <reference types="node" />
/**
 * A loopback TCP proxy in front of the local stack, so a test can cut a
 * client off the network: {@link TcpProxy.drop} resets every connection and
 * closes the listening socket (new connections are refused),
 * {@link TcpProxy.refuse} resets them and each new one, and
 * {@link TcpProxy.restore} forwards again on the same port.
 */
import { createConnection, createServer, type Server, type Socket } from "node:net";

export class TcpProxy {
	readonly #target: { host: string; port: number };
	readonly #sockets = new Set<Socket>();
	#server: Server | null = null;
	#port = 0;
	/** Connections accepted so far (each one is a client connection). */
	accepted = 0;
	/** Bytes forwarded from clients to the stack so far. */
	bytesUp = 0;
	/** Connections reset at once while {@link refuse} is on. */
	refused = 0;
	#refusing = false;

	private constructor(target: { host: string; port: number }) {
		this.#target = target;
	}

	/** Starts a proxy on a free loopback port forwarding to `targetUrl`'s host and port. */
	static async start(targetUrl: string): Promise<TcpProxy> {
		const url = new URL(targetUrl);
		const proxy = new TcpProxy({ host: url.hostname, port: Number(url.port) });
		await proxy.#listen(0);
		return proxy;
	}

	/** `http://127.0.0.1:<port>`: what clients use instead of the stack's URL. */
	get url(): string {
		return `http://127.0.0.1:${this.#port}`;
	}

	/** Whether new connections are being accepted. */
	get up(): boolean {
		return this.#server !== null;
	}

	/** Resets every open connection and stops listening: new connections are refused until {@link restore}. */
	async drop(): Promise<void> {
		const server = this.#server;
		this.#server = null;
		for (const socket of this.#sockets) socket.resetAndDestroy();
		this.#sockets.clear();
		if (server !== null) await new Promise<void>((resolve) => server.close(() => resolve()));
	}

	/**
	 * Like {@link drop}, but keeps listening and resets each new connection
	 * as it arrives, counting it in {@link refused}: a test can wait for a
	 * number of tries instead of for a time.
	 */
	async refuse(): Promise<void> {
		await this.drop();
		this.#refusing = true;
		await this.#listen(this.#port);
	}

	/** Listens again on the same port, forwarding. */
	async restore(): Promise<void> {
		this.#refusing = false;
		if (this.#server !== null) return;
		await this.#listen(this.#port);
	}

	/** Drops everything for good. */
	close(): Promise<void> {
		return this.drop();
	}

	async #listen(port: number): Promise<void> {
		const server = createServer({ noDelay: true }, (client) => this.#pipe(client));
		await new Promise<void>((resolve, reject) => {
			server.once("error", reject);
			server.listen(port, "127.0.0.1", () => {
				server.off("error", reject);
				resolve();
			});
		});
		this.#port = (server.address() as { port: number }).port;
		this.#server = server;
	}

	#pipe(client: Socket): void {
		if (this.#refusing) {
			this.refused++;
			client.on("error", () => undefined);
			client.resetAndDestroy();
			return;
		}
		this.accepted++;
		const upstream = createConnection({ host: this.#target.host, port: this.#target.port, noDelay: true });
		for (const socket of [client, upstream]) {
			this.#sockets.add(socket);
			socket.on("close", () => this.#sockets.delete(socket));
			// A reset on one side resets the other: the client sees the connection break, as on a real network.
			socket.on("error", () => {
				client.destroy();
				upstream.destroy();
			});
		}
		client.on("data", (chunk: Buffer) => (this.bytesUp += chunk.byteLength));
		client.pipe(upstream);
		upstream.pipe(client);
	}
}
