/** The Hono environment of the api worker. */

/** Who is calling, set by the auth middleware. */
export interface Caller {
	userId: string;
	deviceId: string;
	deviceName: string;
	/** The shard that holds the user's rows (docs/decisions/0002). */
	shard: number;
	quotaBytes: number;
}

export type AppEnv = {
	/** BENCH_ROUTES is set only by `npm run bench` (routes/bench.ts). */
	Bindings: Env & { BENCH_ROUTES?: string };
	Variables: {
		requestId: string;
		caller: Caller;
	};
};
