// `npm start`: local secrets, migrations on every local D1 database, then
// both workers on http://127.0.0.1:8787 (see README).
import { ensureDevVars } from "./local-stack.mjs";
import { startStack } from "./local-stack.mjs";

if (ensureDevVars()) console.log("Wrote random local secrets to .dev.vars");
const port = Number(process.env.PORT ?? 8787);
const { url } = await startStack({ port, stdio: "inherit" });
console.log(`\nDrive is up: ${url}  (API description: ${url}/v1/openapi.json)\n`);
