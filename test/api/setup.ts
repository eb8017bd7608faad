/** Applies the D1 migrations to the directory and every shard before each test file. */
import { applyD1Migrations, type D1Migration } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { shardBinding, shardCount } from "../../src/shared/db/shards";

const testEnv = env as unknown as Env & { TEST_DIRECTORY_MIGRATIONS: D1Migration[]; TEST_SHARD_MIGRATIONS: D1Migration[] };

await applyD1Migrations(testEnv.DIRECTORY, testEnv.TEST_DIRECTORY_MIGRATIONS);
for (let i = 0; i < shardCount(testEnv); i++) await applyD1Migrations(shardBinding(testEnv, i), testEnv.TEST_SHARD_MIGRATIONS);
