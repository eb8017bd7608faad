/** Types for scripts/local-stack.mjs, which the TypeScript tests import. */
import type { ChildProcess } from "node:child_process";

export const ROOT: string;
export function wranglerEnv(extra?: Record<string, string>): NodeJS.ProcessEnv;
export function ensureDevVars(file?: string): boolean;
export function d1Bindings(): string[];
export function applyMigrations(persistTo: string): void;
export function startStack(options?: {
	port?: number;
	persistTo?: string;
	stdio?: "inherit" | "pipe";
	vars?: Record<string, string>;
	env?: Record<string, string>;
}): Promise<{ child: ChildProcess; url: string; log: () => string }>;
export function stopStack(child: ChildProcess, signal?: NodeJS.Signals): void;
export function snapshotTree(root: string, dir: string): void;
export function freePort(): Promise<number>;
export function groupMembers(pgid: number): number[];
export function workerdProcesses(pgid: number): { pid: number; role: "runtime" | "proxy" }[];
