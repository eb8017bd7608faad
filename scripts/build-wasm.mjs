// Assembles the WebAssembly sources in src/shared (gear-scan.wat, and
// sha256-compress.wat, which scripts/sha256-wat.mjs writes first) into their
// .wasm binaries with wabt (the WebAssembly project's own assembler,
// compiled to wasm). The binaries are committed, so neither the worker's
// build nor a fresh clone needs this; the tests beside each source fail when
// a binary and its source drift apart.
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import wabtInit from "wabt";
import { sha256CompressSource } from "./sha256-wat.mjs";

const SHARED = join(dirname(fileURLToPath(import.meta.url)), "..", "src", "shared");
/** Each source, with the function that writes it when it is generated. */
const SOURCES = [["gear-scan.wat"], ["sha256-compress.wat", sha256CompressSource]];

/** The text of src/shared/`name`. */
export function watSource(name) {
	return readFileSync(join(SHARED, name), "utf8");
}

/** The binary that `source` assembles to (`name` labels errors). */
export async function assemble(name, source = watSource(name)) {
	const wabt = await wabtInit();
	const module = wabt.parseWat(name, source);
	try {
		module.validate();
		return new Uint8Array(module.toBinary({}).buffer);
	} finally {
		module.destroy();
	}
}

/** The text of gear-scan.wat. */
export function gearScanSource() {
	return watSource("gear-scan.wat");
}

/** The binary that `source` (by default gear-scan.wat) assembles to. */
export function assembleGearScan(source = gearScanSource()) {
	return assemble("gear-scan.wat", source);
}

export { sha256CompressSource };

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	for (const [name, generate] of SOURCES) {
		if (generate) writeFileSync(join(SHARED, name), generate());
		const binary = await assemble(name);
		const target = name.replace(/\.wat$/, ".wasm");
		writeFileSync(join(SHARED, target), binary);
		console.log(`src/shared/${target}: ${binary.length} bytes`);
	}
}
