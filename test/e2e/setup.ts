/** Setup file of the "e2e" project: every file waits until global-setup's stack is up. */
import { stackReady } from "../support/stack";

await stackReady();
