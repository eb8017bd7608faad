/// <reference types="node" />
/**
 * The entry point of the `drive` command (bin/drive.mjs runs it): parses the
 * arguments with commander and turns every outcome into an exit code
 * (output.ts, {@link EXIT}).
 *
 * @module
 */
import { CommanderError } from "commander";
import { buildProgram } from "./commands";
import { EXIT, Output } from "./output";

/**
 * Runs the CLI with `argv` (without `node` and the script).
 * @returns the exit code.
 */
export async function main(argv: string[]): Promise<number> {
	// Known before parsing, so even a usage error is reported in the shape asked for.
	const out = new Output(argv.includes("--json"));
	const program = buildProgram(out);
	try {
		await program.parseAsync(argv, { from: "user" });
		return EXIT.ok;
	} catch (err) {
		if (err instanceof CommanderError) {
			// Help and --version end with exit code 0 through the same path.
			if (err.exitCode === 0) return EXIT.ok;
			if (out.json) process.stderr.write(`${JSON.stringify({ error: { code: "USAGE", message: err.message.replace(/^error: /, "") } })}\n`);
			return EXIT.usage;
		}
		return out.fail(err);
	}
}
