/** JSON Schemas for the JSON editors, taken from the API's own /openapi.json (the request
 * bodies of PUT /agents/{id} and PUT /routing), so completion, hover and lint always match
 * what the API validates: no copy of the schema lives in the console.
 *
 * codemirror-json-schema validates with json-schema-library's Draft 4, so the OpenAPI 3.1
 * schemas are rewritten on the way: `#/components/schemas/X` -> `#/definitions/X`, and
 * numeric `exclusiveMinimum`/`exclusiveMaximum` (draft 6+) -> the draft-4 boolean form. */
import type { jsonSchema } from "codemirror-json-schema";

/** What codemirror-json-schema takes (its JSONSchema7), without a types package of our own. */
export type EditorSchema = NonNullable<Parameters<typeof jsonSchema>[0]>;

type Schema = { [key: string]: unknown };

let openapi: Promise<Schema> | null = null;

function loadOpenApi(): Promise<Schema> {
  openapi ??= fetch("/openapi.json", { headers: { Accept: "application/json" } }).then((r) => {
    if (!r.ok) throw new Error(`/openapi.json answered ${r.status}`);
    return r.json() as Promise<Schema>;
  });
  openapi.catch(() => (openapi = null)); // a failed load is retried next time
  return openapi;
}

function toDraft4(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(toDraft4);
  if (node === null || typeof node !== "object") return node;
  const out: Schema = {};
  for (const [key, value] of Object.entries(node as Schema)) {
    if (key === "$ref" && typeof value === "string") {
      out.$ref = value.replace("#/components/schemas/", "#/definitions/");
    } else if ((key === "exclusiveMinimum" || key === "exclusiveMaximum") && typeof value === "number") {
      out[key === "exclusiveMinimum" ? "minimum" : "maximum"] = value;
      out[key] = true;
    } else {
      out[key] = toDraft4(value);
    }
  }
  return out;
}

/** The request body schema of one operation, with the named top-level properties removed. */
async function bodySchema(path: string, method: string, without: string[]): Promise<EditorSchema> {
  const document = await loadOpenApi();
  const operation = ((document.paths as Schema)[path] as Schema)[method] as Schema;
  const ref = (((operation.requestBody as Schema).content as Schema)["application/json"] as Schema).schema as Schema;
  const components = (document.components as Schema).schemas as Schema;
  const name = String(ref.$ref).split("/").pop()!;
  const root = toDraft4(components[name]) as Schema;
  const properties = { ...(root.properties as Schema) };
  for (const key of without) delete properties[key];
  return {
    ...root,
    properties,
    required: ((root.required as string[]) ?? []).filter((k) => !without.includes(k)),
    definitions: toDraft4(components) as Schema,
  } as EditorSchema;
}

/** What the agent editor's JSON mode edits: the definition without status and store fields. */
export const agentDefinitionSchema = () =>
  bodySchema("/api/v1/agents/{agent_id}", "put", ["version", "created_at", "updated_at", "status"]);

/** What the routing page edits: `{"chain": [...]}`. */
export const routingRulesSchema = () => bodySchema("/api/v1/routing", "put", ["version", "updated_at"]);
