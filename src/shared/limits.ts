/** Limits every client must respect (API.md "Conventions"). */

/** The largest request body any route accepts: 100 MB (decimal), Cloudflare's request limit. */
export const MAX_REQUEST_BYTES = 100_000_000;

/** The largest block a client may send through upload sessions. */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;
