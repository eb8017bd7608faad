/** The Hono environment of the api worker. */

/** Who is calling, set by the auth middleware. */
export interface Caller {
	userId: string;
	email: string;
	deviceId: string;
	deviceName: string;
	/** The shard that holds the user's rows (docs/decisions/0002). */
	shard: number;
	quotaBytes: number;
}

export type AppEnv = {
	Bindings: Env;
	Variables: {
		requestId: string;
		caller: Caller;
	};
};
