import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ResumableSha256, useSha256Module } from "./sha256-resumable";

const BINARY = new Uint8Array(readFileSync(new URL("./sha256-compress.wasm", import.meta.url)));

/** Node compiles WebAssembly from bytes; the worker's types only know imported modules. */
function compiled(): WebAssembly.Module {
	return new (WebAssembly.Module as unknown as new (bytes: Uint8Array) => WebAssembly.Module)(BINARY);
}

function nodeSha256(data: Uint8Array): string {
	return createHash("sha256").update(data).digest("hex");
}

/** Split points for `data`: its own random bytes choose each piece's length, short or long, so runs repeat. */
function* pieces(data: Uint8Array, seed: number): Generator<Uint8Array> {
	for (let at = 0, k = seed; at < data.length; k++) {
		const pick = ((data[k % data.length] as number) << 8) | (data[(k * 7 + seed) % data.length] as number);
		const end = Math.min(data.length, at + 1 + (k % 2 === 0 ? pick % 100 : pick * 23));
		yield data.subarray(at, end);
		at = end;
	}
}

/** scripts/build-wasm.mjs, which writes sha256-compress.wat and assembles the .wat sources with wabt. */
async function buildScript(): Promise<{
	watSource(name: string): string;
	assemble(name: string, source?: string): Promise<Uint8Array>;
	sha256CompressSource(): string;
}> {
	// @ts-expect-error: a plain .mjs script without types
	return import("../../scripts/build-wasm.mjs");
}

describe("ResumableSha256", () => {
	beforeAll(() => useSha256Module(compiled()));
	afterAll(() => useSha256Module(null));

	it("is the binary that sha256-compress.wat assembles to, and the .wat is what its generator writes", async () => {
		const build = await buildScript();
		expect(build.watSource("sha256-compress.wat")).toBe(build.sha256CompressSource());
		expect(BINARY).toEqual(await build.assemble("sha256-compress.wat"));
	});

	it("hashes like node:crypto at every length around the padding boundaries", () => {
		const data = randomBytes(300);
		for (let n = 0; n <= data.length; n++) {
			const bytes = data.subarray(0, n);
			expect(new ResumableSha256().update(bytes).digestHex(), `length ${n}`).toBe(nodeSha256(bytes));
		}
	});

	it("hashes like node:crypto however the input is split, saved and restored", () => {
		const data = randomBytes(3 * 1024 * 1024 + 77);
		const expected = nodeSha256(data);
		for (const seed of [1, 2, 3, 4]) {
			let hash = new ResumableSha256();
			for (const piece of pieces(data, seed)) {
				hash.update(piece);
				const saved = hash.save();
				expect(saved.length).toBeLessThanOrEqual(216);
				const restored = ResumableSha256.restore(saved);
				expect(restored?.length).toBe(hash.length);
				hash = restored ?? hash;
			}
			expect(hash.digestHex(), `seed ${seed}`).toBe(expected);
		}
	});

	it("can go on after a digest, and a restored copy does not share state with the original", () => {
		const data = randomBytes(1000);
		const hash = new ResumableSha256().update(data.subarray(0, 500));
		expect(hash.digestHex()).toBe(nodeSha256(data.subarray(0, 500)));
		const copy = ResumableSha256.restore(hash.save());
		hash.update(data.subarray(500));
		expect(hash.digestHex()).toBe(nodeSha256(data));
		expect(copy?.digestHex()).toBe(nodeSha256(data.subarray(0, 500)));
	});

	it("refuses saved states that are not its own", () => {
		const good = new ResumableSha256().update(new Uint8Array(70)).save();
		expect(ResumableSha256.restore(good)).not.toBeNull();
		for (const bad of ["", "sha1:70:00", good.replace(":70:", ":71:"), good.replace("sha256:", "sha256:x"), `${good}00`, good.slice(0, -2)])
			expect(ResumableSha256.restore(bad), bad).toBeNull();
	});

	it("refuses to hash before the module is installed", () => {
		useSha256Module(null);
		try {
			expect(() => new ResumableSha256().update(new Uint8Array(64))).toThrow(/useSha256Module/);
		} finally {
			useSha256Module(compiled());
		}
	});
});
