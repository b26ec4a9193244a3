/** An agent type's definition as the editor holds it: the user-authored part of the config
 * (what PUT /agents/{id} accepts), read and written by dotted paths (`llm.model`,
 * `turn_schema.fields.2.enum`), the same paths the API's field problems name. */
import type { AgentConfig } from "../types";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Definition = { [key: string]: Json };

/** Owned by the store (`version`, timestamps) or changed only through pause / resume /
 * archive (`status`): never part of what the editor sends. */
const NOT_AUTHORED = ["version", "created_at", "updated_at", "status"];

export function definitionOf(config: AgentConfig | Definition): Definition {
  const definition: Definition = {};
  for (const [key, value] of Object.entries(config)) {
    if (!NOT_AUTHORED.includes(key)) definition[key] = value as Json;
  }
  return definition;
}

/** What a saved version holds, status included (a pause is a version of its own): for diffs. */
export function versionContent(config: AgentConfig): Definition {
  const { version: _v, created_at: _c, updated_at: _u, ...content } = config;
  return content as Definition;
}

/** Pretty JSON with a stable key order, so that two versions diff line by line. */
export function prettyJson(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

function parts(path: string): string[] {
  return path === "" ? [] : path.split(".");
}

export function getAt(root: unknown, path: string): Json | undefined {
  let node: unknown = root;
  for (const part of parts(path)) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node as Json | undefined;
}

/** A copy of `root` with `value` at `path` (`undefined` removes the key); objects and arrays
 * on the way are copied, never mutated, so React sees each edit as a new draft. */
export function setAt<T extends Json>(root: T, path: string, value: Json | undefined): T {
  const [head, ...rest] = parts(path);
  if (head === undefined) return value as T;
  const container: Json = root !== null && typeof root === "object" ? root : /^\d+$/.test(head) ? [] : {};
  const child = (container as Record<string, Json>)[head];
  const next = rest.length ? setAt(child ?? null, rest.join("."), value) : value;
  if (Array.isArray(container)) {
    const copy = [...container];
    if (next === undefined) copy.splice(Number(head), 1);
    else copy[Number(head)] = next;
    return copy as T;
  }
  const copy: Record<string, Json> = { ...container };
  if (next === undefined) delete copy[head];
  else copy[head] = next;
  return copy as T;
}

/** `turn_schema.fields.2` -> `/turn_schema/fields/2` (RFC 6901), for CodeMirror positions. */
export function pointerOf(path: string): string {
  return parts(path)
    .map((p) => "/" + p.replace(/~/g, "~0").replace(/\//g, "~1"))
    .join("");
}

/** Pretty JSON for reading a diff: like prettyJson, but a string with line breaks (the
 * instructions) is written as an indented block of its lines, so that a changed sentence is a
 * changed line, not one 3,000-character line. For display only: it is not JSON. */
export function diffableJson(value: unknown, indent = ""): string {
  const inner = indent + "  ";
  if (typeof value === "string" && value.includes("\n")) {
    return "|\n" + value.replace(/\n$/, "").split("\n").map((line) => inner + line).join("\n");
  }
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    return "[\n" + value.map((v) => inner + diffableJson(v, inner)).join(",\n") + "\n" + indent + "]";
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (!entries.length) return "{}";
    return "{\n" + entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${diffableJson(v, inner)}`).join(",\n") + "\n" + indent + "}";
  }
  return JSON.stringify(value) ?? "null";
}

export function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
