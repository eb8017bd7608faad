/** Limits every client must respect (docs/api.md, "Limits"). */

/** The largest request body any route accepts: 100 MB (decimal), Cloudflare's request limit. */
export const MAX_REQUEST_BYTES = 100_000_000;

/**
 * Folders nest at most this deep below the root: deeper trees cannot be
 * materialised on Windows or in most sync clients, and every path read walks
 * the chain (audit L8).
 */
export const MAX_FOLDER_DEPTH = 256;

/** The largest block a client may send through upload sessions. */
export const MAX_BLOCK_BYTES = 8 * 1024 * 1024;
