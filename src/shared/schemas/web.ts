/** The web app's cookie sessions (/v1/auth/web/*, docs/api.md "Web sessions (browser)"). */
import type { z } from "@hono/zod-openapi";
import { Session } from "./auth";

/** A session as the browser sees it: the refresh token travels only in the HttpOnly cookie, never in JSON. */
export const WebSession = Session.omit({ refresh_token: true }).openapi("WebSession");
export type WebSession = z.infer<typeof WebSession>;
