/** The api worker: auth, the files API, upload sessions and downloads. */
import { buildApp } from "./app";

export default buildApp();
