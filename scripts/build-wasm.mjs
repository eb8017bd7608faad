// Assembles src/shared/gear-scan.wat into gear-scan.wasm with wabt (the
// WebAssembly project's own assembler, compiled to wasm). The binary is
// committed, so neither the worker's build nor a fresh clone needs this;
// src/shared/chunking.test.ts fails when the two drift apart.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";

const SOURCE = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "shared", "gear-scan.wat");

/** The text of gear-scan.wat. */
export function gearScanSource() {
	return readFileSync(SOURCE, "utf8");
}

/** The binary that `source` (by default gear-scan.wat) assembles to. */
export async function assembleGearScan(source = gearScanSource()) {
	const wabt = await wabtInit();
	const module = wabt.parseWat("gear-scan.wat", source);
	try {
		module.validate();
		return new Uint8Array(module.toBinary({}).buffer);
	} finally {
		module.destroy();
	}
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const binary = await assembleGearScan();
	writeFileSync(SOURCE.replace(/\.wat$/, ".wasm"), binary);
	console.log(`src/shared/gear-scan.wasm: ${binary.length} bytes`);
}
