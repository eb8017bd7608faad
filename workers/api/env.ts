/** The Hono environment of the api worker. */
import type { HubScope } from "../notify/user-hub";

/** Who is calling, set by the auth middleware. */
export interface Caller extends HubScope {
	deviceId: string;
	deviceName: string;
	quotaBytes: number;
}

export type AppEnv = {
	Bindings: Env;
	Variables: {
		requestId: string;
		caller: Caller;
	};
};
