// The linter (typescript-eslint): the rules STYLE.md asks for that the
// compiler does not check, with type information where a rule needs it.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
	{ ignores: ["node_modules/", ".cli-build/", "**/.wrangler/", "env.d.ts", "coverage/", "bench/baselines/", "web/dist/"] },
	{
		files: ["**/*.ts", "**/*.tsx"],
		extends: [js.configs.recommended, tseslint.configs.recommended],
		languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
		rules: {
			"@typescript-eslint/no-floating-promises": "error",
			"@typescript-eslint/no-misused-promises": ["error", { checksVoidReturn: false }],
			"@typescript-eslint/await-thenable": "error",
			"@typescript-eslint/no-non-null-assertion": "error",
			"@typescript-eslint/no-explicit-any": "error",
			"@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
			"@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
			"no-constant-condition": ["error", { checkLoops: false }],
			// Names and device names are checked for control characters on purpose.
			"no-control-regex": "off",
		},
	},
	{
		files: ["**/*.mjs"],
		extends: [js.configs.recommended],
		languageOptions: {
			globals: {
				process: "readonly",
				console: "readonly",
				Buffer: "readonly",
				setTimeout: "readonly",
				clearTimeout: "readonly",
				setInterval: "readonly",
				clearInterval: "readonly",
				fetch: "readonly",
				URL: "readonly",
				URLSearchParams: "readonly",
				AbortSignal: "readonly",
				WebSocket: "readonly",
				performance: "readonly",
				AbortController: "readonly",
				TextEncoder: "readonly",
				TextDecoder: "readonly",
				Response: "readonly",
				Request: "readonly",
				Headers: "readonly",
				ReadableStream: "readonly",
				WritableStream: "readonly",
				crypto: "readonly",
				structuredClone: "readonly",
				queueMicrotask: "readonly",
				Blob: "readonly",
				FormData: "readonly",
				atob: "readonly",
				btoa: "readonly",
			},
		},
		rules: { "no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }] },
	},
);
