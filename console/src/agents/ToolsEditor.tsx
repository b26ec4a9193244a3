/** The agent type's `tools` (agent_configs/tools.py): one card per tool, in the order the
 * model is offered them, with the fields its kind has. Nothing is checked here that the API
 * checks on save (egress policy, targets that exist, JSON Schema): its 422 field paths
 * (`tools.0.url`, `tools.1.targets.0`, `tools.0.headers.Authorization.env`) show next to the
 * field they name, like every other field of the form. What is shown locally is only what
 * cannot wait for a save: JSON that does not parse, and URL placeholders nothing fills. */
import "./toolsEditor.css";
import { createContext, useContext, useEffect, useState, type ReactNode } from "react";
import { listAgentTypes } from "../playground/agents";
import type { AgentConfig } from "../types";
import { getAt, sameJson, type Json } from "./definition";
import { ListInput, NumberField, SelectField, TextField, useDraft } from "./formControls";
import { FieldErrors, useProblems } from "./problems";

const PATH = "tools";
type ToolDraft = { [key: string]: Json };

/** agent_configs/tools.py SESSION_VALUES: what a URL or header may take from the session. */
const SESSION_VALUES = ["session_id", "agent_id", "user_id", "room"] as const;

interface KindInfo {
  label: string;
  blurb: string;
  /** tool_problems(): one of these per agent type. */
  single: boolean;
  create: (name: string) => ToolDraft;
}

const KINDS: Record<string, KindInfo> = {
  http: {
    label: "HTTP request",
    blurb: "Call an API: the model fills the parameters, the worker sends the request.",
    single: false,
    create: (name) => ({
      kind: "http",
      name,
      description: "Look up an order by its number.",
      method: "GET",
      url: "http://127.0.0.1:8080/orders/{order_id}",
      parameters: {
        type: "object",
        properties: { order_id: { type: "string", description: "The order number the user gave." } },
        required: ["order_id"],
      },
    }),
  },
  transfer_to_agent: {
    label: "Transfer to agent",
    blurb: "The model hands the conversation to another agent type, with a reason.",
    single: true,
    create: (name) => ({
      kind: "transfer_to_agent",
      name,
      description: "Hand the conversation to a colleague agent better suited to what the user needs.",
      targets: [],
      context: "full",
    }),
  },
  escalate_to_human: {
    label: "Escalate to a human",
    blurb: "Marks the session and tells the frontend; the agent goes on, holds or ends.",
    single: true,
    create: (name) => ({
      kind: "escalate_to_human",
      name,
      description: "Ask for a human colleague when you cannot help or the user asks for a person.",
      then: "continue",
    }),
  },
  end_session: {
    label: "End session",
    blurb: "The agent says goodbye and ends the session (end reason agent_ended).",
    single: true,
    create: (name) => ({ kind: "end_session", name, description: "End the conversation when the user is done or says goodbye." }),
  },
  plugin: {
    label: "Plugin",
    blurb: "A Python tool installed in the switchboard.tools entry-point group.",
    single: false,
    create: (name) => ({ kind: "plugin", name, plugin: "", options: {} }),
  },
  mcp: {
    label: "MCP server",
    blurb: "The tools of an MCP server (streamable HTTP): all of them, or those you allow.",
    single: false,
    create: (name) => ({ kind: "mcp", name, url: "http://127.0.0.1:8931/mcp" }),
  },
};

const DEFAULT_NAMES: Record<string, string> = {
  http: "lookup",
  transfer_to_agent: "transfer_to_agent",
  escalate_to_human: "escalate_to_human",
  end_session: "end_session",
  plugin: "plugin_tool",
  mcp: "mcp_server",
};

function unusedName(tools: ToolDraft[], base: string): string {
  const taken = new Set(tools.map((t) => String(t.name ?? "")));
  if (!taken.has(base)) return base;
  let n = 2;
  while (taken.has(`${base}_${n}`)) n++;
  return `${base}_${n}`;
}

/** The agent types a transfer may name, loaded once per editor. */
type AgentTypes = { status: "loading" } | { status: "loaded"; agents: AgentConfig[] } | { status: "failed"; message: string };
const AgentTypesContext = createContext<AgentTypes>({ status: "loading" });

function useAgentTypeList(): AgentTypes {
  const [state, setState] = useState<AgentTypes>({ status: "loading" });
  useEffect(() => {
    let live = true;
    listAgentTypes()
      .then((agents) => live && setState({ status: "loaded", agents }))
      .catch((error: Error) => live && setState({ status: "failed", message: error.message }));
    return () => {
      live = false;
    };
  }, []);
  return state;
}

export function ToolsEditor() {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, PATH);
  const tools = Array.isArray(value) ? (value as ToolDraft[]) : [];
  const agentTypes = useAgentTypeList();

  const move = (index: number, by: number) => {
    const next = [...tools];
    const [moved] = next.splice(index, 1);
    next.splice(index + by, 0, moved);
    update(PATH, next);
  };
  const add = (kind: string) => update(PATH, [...tools, KINDS[kind].create(unusedName(tools, DEFAULT_NAMES[kind]))]);
  const remove = (index: number) => update(PATH, tools.filter((_, i) => i !== index));

  return (
    <AgentTypesContext.Provider value={agentTypes}>
        <div className="tools-editor" data-testid="tools-editor">
          {tools.length === 0 ? (
            <p className="hint tools-empty">No tools: the agent only talks. Add one to let the model look things up, hand over, or end the session.</p>
          ) : (
            <ol className="tool-rows">
              {tools.map((tool, index) => (
                <ToolRow
                  key={index}
                  index={index}
                  tool={tool}
                  count={tools.length}
                  readOnly={readOnly}
                  onMove={(by) => move(index, by)}
                  onRemove={() => remove(index)}
                />
              ))}
            </ol>
          )}
          <FieldErrors path={PATH} />
          <AddTool tools={tools} readOnly={readOnly} onAdd={add} />
        </div>
    </AgentTypesContext.Provider>
  );
}

function ToolRow({
  index,
  tool,
  count,
  readOnly,
  onMove,
  onRemove,
}: {
  index: number;
  tool: ToolDraft;
  count: number;
  readOnly: boolean;
  onMove: (by: number) => void;
  onRemove: () => void;
}) {
  const at = `${PATH}.${index}`;
  const kind = String(tool.kind ?? "");
  const info = KINDS[kind];
  const invalid = useProblems(at, true).length > 0;
  return (
    <li className={`tool-row${invalid ? " invalid" : ""}`} data-testid="tool-row" data-kind={kind} data-tool-name={String(tool.name ?? "")}>
      <header className="tool-row-head">
        <span className="tool-row-number">{index + 1}</span>
        <span className="chip">{info?.label ?? kind}</span>
        <code className="tool-row-name">{String(tool.name ?? "")}</code>
        <span className="tool-row-actions">
          <button type="button" className="icon" title="Move up" aria-label="Move up" data-testid="tool-up" disabled={readOnly || index === 0} onClick={() => onMove(-1)}>
            ↑
          </button>
          <button type="button" className="icon" title="Move down" aria-label="Move down" data-testid="tool-down" disabled={readOnly || index === count - 1} onClick={() => onMove(1)}>
            ↓
          </button>
          <button type="button" className="icon danger" title="Remove this tool" aria-label="Remove tool" data-testid="tool-remove" disabled={readOnly} onClick={onRemove}>
            ×
          </button>
        </span>
      </header>
      {/* Checks across a tool's fields name the tool (an http tool's go under its URL: the only
          such check is on its placeholders) or its kind (a second transfer tool). */}
      {kind !== "http" && <FieldErrors path={at} />}
      <FieldErrors path={`${at}.kind`} />
      {info ? <KindFields kind={kind} at={at} tool={tool} /> : <p className="notice">Unknown kind “{kind}”: edit this tool in JSON mode, or remove it.</p>}
    </li>
  );
}

function KindFields({ kind, at, tool }: { kind: string; at: string; tool: ToolDraft }) {
  const nameHint = "What the model calls it: lowercase letters, digits and _.";
  const name = <TextField path={`${at}.name`} label="Name" mono hint={nameHint} />;
  const description = (optional = false) => (
    <TextField
      path={`${at}.description`}
      label="Description"
      multiline
      rows={2}
      whenEmpty={optional ? "remove" : "empty-string"}
      hint={optional ? "Overrides the plugin's own description, when given." : "The model reads it to decide when to call the tool."}
    />
  );
  switch (kind) {
    case "http":
      return (
        <>
          <div className="grid three">
            {name}
            <SelectField path={`${at}.method`} label="Method" options={["GET", "POST", "PUT", "PATCH", "DELETE"].map((m) => ({ value: m, label: m }))} />
            <NumberField path={`${at}.timeout_s`} label="Timeout (s)" min={0.1} max={30} step={0.5} placeholder="5" />
          </div>
          {description()}
          <TextField path={`${at}.url`} label="URL" mono hint={<UrlHint url={String(tool.url ?? "")} parameters={tool.parameters} />} />
          <div className="tool-level-errors">
            <FieldErrors path={at} />
          </div>
          <JsonObjectField
            path={`${at}.parameters`}
            label="Parameters (JSON Schema)"
            rows={8}
            hint={<>What the model must send: a JSON Schema of <code>type: "object"</code>; each property can fill a URL placeholder.</>}
          />
          <HeadersEditor path={`${at}.headers`} />
          <div className="grid three">
            <TextField path={`${at}.result_pointer`} label="Result pointer" mono whenEmpty="remove" placeholder="/status" hint="A JSON pointer: only that part of the response goes back to the model." />
            <NumberField path={`${at}.max_result_chars`} label="Max result characters" integer min={50} max={20000} placeholder="2000" />
            <TextField path={`${at}.waiting_message`} label="Waiting message" whenEmpty="remove" placeholder="Let me look that up." hint="Said or shown while the request runs." />
          </div>
        </>
      );
    case "end_session":
      return (
        <>
          {name}
          {description()}
          <TextField path={`${at}.goodbye`} label="Goodbye" multiline rows={2} whenEmpty="remove" hint="Said before the session ends; empty: the model's own last words are the goodbye." />
        </>
      );
    case "transfer_to_agent":
      return (
        <>
          <div className="grid two">
            {name}
            <SelectField
              path={`${at}.context`}
              label="Context for the new agent"
              options={[
                { value: "full", label: "full: the whole conversation" },
                { value: "summary", label: "summary: a summary of it" },
                { value: "none", label: "none: start afresh" },
              ]}
            />
          </div>
          {description()}
          <TargetsField path={`${at}.targets`} />
        </>
      );
    case "escalate_to_human":
      return (
        <>
          <div className="grid two">
            {name}
            <SelectField
              path={`${at}.then`}
              label="Then"
              options={[
                { value: "continue", label: "continue: keep talking" },
                { value: "hold", label: "hold: stop answering until a human takes over" },
                { value: "end", label: "end: end the session" },
              ]}
            />
          </div>
          {description()}
          <TextField path={`${at}.message`} label="Message" multiline rows={2} whenEmpty="remove" hint="Said to the user when the agent escalates." />
        </>
      );
    case "plugin":
      return (
        <>
          <div className="grid two">
            {name}
            <TextField path={`${at}.plugin`} label="Plugin" mono placeholder="acme.crm_lookup" hint="Its entry-point name in the switchboard.tools group." />
          </div>
          {description(true)}
          <JsonObjectField path={`${at}.options`} label="Options (JSON)" rows={4} hint="An object of strings, numbers and booleans the plugin is built with." />
        </>
      );
    case "mcp":
      return (
        <>
          <div className="grid three">
            <TextField path={`${at}.name`} label="Name" mono hint="Names the server in records." />
            <NumberField path={`${at}.timeout_s`} label="Timeout (s)" min={0.1} max={60} step={0.5} placeholder="10" />
            <AllowedTools path={`${at}.allowed_tools`} />
          </div>
          <TextField path={`${at}.url`} label="URL" mono hint="The server's streamable HTTP endpoint; its host must pass the egress policy." />
          <HeadersEditor path={`${at}.headers`} />
        </>
      );
    default:
      return null;
  }
}

// -- a field's frame (label, input, hint, the API's errors for its path) -----------------

function FieldFrame({ path, label, hint, nested, children, local }: { path: string; label: string; hint?: ReactNode; nested?: boolean; children: ReactNode; local?: ReactNode }) {
  const invalid = useProblems(path, nested).length > 0 || !!local;
  return (
    <div className={`field ${invalid ? "invalid" : ""}`}>
      <label htmlFor={`field-${path}`}>{label}</label>
      {children}
      {hint && <p className="hint">{hint}</p>}
      {local}
      <FieldErrors path={path} nested={nested} />
    </div>
  );
}

// -- the URL's placeholders --------------------------------------------------------------

/** The `{name}` fields of a URL template (`{{` and `}}` are literal braces), as
 * agent_configs/tools.py url_placeholders reads them. */
function urlPlaceholders(url: string): string[] {
  const unescaped = url.replace(/\{\{|\}\}/g, "");
  return [...unescaped.matchAll(/\{([^{}]*)\}/g)].map((m) => m[1].split(/[!:]/)[0]);
}

function propertiesOf(parameters: Json | undefined): string[] {
  if (!parameters || typeof parameters !== "object" || Array.isArray(parameters)) return [];
  const properties = parameters.properties;
  return properties && typeof properties === "object" && !Array.isArray(properties) ? Object.keys(properties) : [];
}

function UrlHint({ url, parameters }: { url: string; parameters: Json | undefined }) {
  const properties = propertiesOf(parameters);
  const unknown = urlPlaceholders(url).filter((name) => !properties.includes(name) && !(SESSION_VALUES as readonly string[]).includes(name));
  return (
    <>
      Placeholders: {properties.length > 0 ? properties.map((p) => <code key={p} className="placeholder">{`{${p}}`}</code>) : <span>no parameters yet</span>} (parameters) ·{" "}
      {SESSION_VALUES.map((s) => (
        <code key={s} className="placeholder session">{`{${s}}`}</code>
      ))}{" "}
      (session values). Arguments not in the URL go in the query string (GET, DELETE) or a JSON body. The host must pass the egress policy.
      {unknown.length > 0 && (
        <span className="placeholder-warning" data-testid="url-unknown-placeholder">
          {" "}
          {unknown.map((u) => `{${u}}`).join(", ")} {unknown.length === 1 ? "is" : "are"} neither a parameter nor a session value.
        </span>
      )}
    </>
  );
}

// -- JSON objects edited as text ---------------------------------------------------------

/** A JSON object as text. While the text does not parse, the draft holds the text itself, so
 * a save is refused at this path (422) instead of quietly sending the last valid object. */
function JsonObjectField({ path, label, hint, rows }: { path: string; label: string; hint?: ReactNode; rows: number }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, path);
  const [text, setText] = useState(() => textOf(value));
  const [parseError, setParseError] = useState<string | null>(() => parseProblem(textOf(value)));
  useEffect(() => {
    if (!describes(text, value)) {
      setText(textOf(value));
      setParseError(parseProblem(textOf(value)));
    }
  }, [JSON.stringify(value)]); // only a change from elsewhere (JSON mode, a reload, a move) rewrites the text
  function change(next: string) {
    setText(next);
    if (next.trim() === "") {
      setParseError(null);
      update(path, undefined); // the default applies (no parameters, no options)
      return;
    }
    const problem = parseProblem(next);
    setParseError(problem);
    update(path, problem ? next : (JSON.parse(next) as Json));
  }
  const local = parseError ? (
    <span className="field-error" role="alert" data-testid="field-error" data-field={path} data-local="true">
      {parseError}
    </span>
  ) : null;
  return (
    <FieldFrame path={path} label={label} hint={hint} nested local={local}>
      <textarea id={`field-${path}`} data-testid={`field-${path}`} className="mono json-text" rows={rows} spellCheck={false} value={text} readOnly={readOnly} onChange={(e) => change(e.target.value)} />
    </FieldFrame>
  );
}

function textOf(value: Json | undefined): string {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value, null, 2);
}

function parseProblem(text: string): string | null {
  if (text.trim() === "") return null;
  try {
    const parsed: unknown = JSON.parse(text);
    return parsed !== null && typeof parsed === "object" && !Array.isArray(parsed) ? null : "Must be a JSON object ({ … }).";
  } catch (error) {
    return `Not valid JSON: ${(error as Error).message}`;
  }
}

function describes(text: string, value: Json | undefined): boolean {
  if (typeof value === "string") return text === value;
  if (value === undefined) return text.trim() === "";
  try {
    return sameJson(JSON.parse(text), value);
  } catch {
    return false;
  }
}

// -- headers -----------------------------------------------------------------------------

type HeaderSource = "env" | "session" | "value";
interface HeaderRow {
  name: string;
  source: HeaderSource;
  value: string;
}

const SOURCES: { value: HeaderSource; label: string }[] = [
  { value: "env", label: "env var (a secret)" },
  { value: "session", label: "session value" },
  { value: "value", label: "constant" },
];

function rowsOf(headers: Json | undefined): HeaderRow[] {
  if (!headers || typeof headers !== "object" || Array.isArray(headers)) return [];
  return Object.entries(headers).map(([name, spec]) => {
    const given = spec && typeof spec === "object" && !Array.isArray(spec) ? spec : {};
    const source = (["env", "session", "value"] as HeaderSource[]).find((s) => given[s] != null) ?? "env";
    return { name, source, value: given[source] == null ? "" : String(given[source]) };
  });
}

function headersOf(rows: HeaderRow[]): { [name: string]: Json } {
  const headers: { [name: string]: Json } = {};
  for (const row of rows) if (row.name.trim()) headers[row.name.trim()] = { [row.source]: row.value };
  return headers;
}

/** Header rows: a name and where its value comes from. The rows are the user's while typing
 * (an unnamed row, two rows with one name); the draft gets the object they make. */
function HeadersEditor({ path }: { path: string }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, path);
  const [rows, setRows] = useState<HeaderRow[]>(() => rowsOf(value));
  useEffect(() => {
    if (!sameJson(headersOf(rows), value ?? {})) setRows(rowsOf(value));
  }, [JSON.stringify(value)]);
  const change = (next: HeaderRow[]) => {
    setRows(next);
    const headers = headersOf(next);
    update(path, Object.keys(headers).length || value !== undefined ? headers : undefined);
  };
  const setRow = (index: number, patch: Partial<HeaderRow>) => change(rows.map((r, i) => (i === index ? { ...r, ...patch } : r)));
  const names = rows.map((r) => r.name.trim());
  const problems = useProblems(path, true);
  return (
    <div className="field headers-field">
      <span>Headers</span>
      {rows.length > 0 && (
        <div className="header-rows">
          {rows.map((row, index) => {
            const name = row.name.trim();
            const at = `${path}.${name}`;
            const twice = name !== "" && names.indexOf(name) !== index;
            const invalid = twice || (name !== "" && problems.some((p) => p.field === at || p.field.startsWith(at + ".")));
            return (
              <div key={index} className={`header-row${invalid ? " invalid" : ""}`} data-testid="header-row" data-header={name}>
                <input className="mono" aria-label="Header name" data-testid="header-name" placeholder="Authorization" value={row.name} readOnly={readOnly} onChange={(e) => setRow(index, { name: e.target.value })} />
                <select aria-label="Value from" data-testid="header-source" value={row.source} disabled={readOnly} onChange={(e) => setRow(index, { source: e.target.value as HeaderSource, value: "" })}>
                  {SOURCES.map((s) => (
                    <option key={s.value} value={s.value}>
                      {s.label}
                    </option>
                  ))}
                </select>
                {row.source === "session" ? (
                  <select aria-label="Session value" id={name ? `field-${at}.session` : undefined} data-testid={name ? `field-${at}.session` : "header-value"} value={row.value} disabled={readOnly} onChange={(e) => setRow(index, { value: e.target.value })}>
                    <option value="" disabled>
                      choose…
                    </option>
                    {SESSION_VALUES.map((s) => (
                      <option key={s} value={s}>
                        {s}
                      </option>
                    ))}
                  </select>
                ) : (
                  <input
                    className={row.source === "env" ? "mono" : undefined}
                    aria-label={row.source === "env" ? "Env var name" : "Constant value"}
                    id={name ? `field-${at}.${row.source}` : undefined}
                    data-testid={name ? `field-${at}.${row.source}` : "header-value"}
                    placeholder={row.source === "env" ? "ORDERS_API_TOKEN" : "application/json"}
                    value={row.value}
                    readOnly={readOnly}
                    onChange={(e) => setRow(index, { value: e.target.value })}
                  />
                )}
                <button type="button" className="icon danger" title="Remove this header" aria-label="Remove header" data-testid="header-remove" disabled={readOnly} onClick={() => change(rows.filter((_, i) => i !== index))}>
                  ×
                </button>
                <div className="header-row-errors">
                  {twice && <span className="field-error">“{name}” is listed twice: the last one counts.</span>}
                  {name && <FieldErrors path={at} nested />}
                </div>
              </div>
            );
          })}
        </div>
      )}
      <p className="hint">
        An env var's value goes only to hosts the egress policy allows for it (never written into the config); a session value is one of {SESSION_VALUES.join(", ")}; a constant must not be a secret.
      </p>
      <FieldErrors path={path} />
      <button type="button" className="add-row" data-testid="add-header" disabled={readOnly} onClick={() => change([...rows, { name: "", source: "env", value: "" }])}>
        + Add header
      </button>
    </div>
  );
}

// -- transfer targets --------------------------------------------------------------------

function TargetsField({ path }: { path: string }) {
  const { draft, update, readOnly } = useDraft();
  const agentTypes = useContext(AgentTypesContext);
  const value = getAt(draft, path);
  const selected = Array.isArray(value) ? value.map(String) : [];
  const self = String(draft.agent_id ?? "");
  const invalid = useProblems(path, true).length > 0;
  if (agentTypes.status !== "loaded") {
    // Without the list, the targets are still editable as text.
    return (
      <FieldFrame path={path} label="Targets" nested hint={agentTypes.status === "failed" ? `The agent types could not be listed (${agentTypes.message}): type their ids, comma-separated.` : "Loading the agent types…"}>
        <ListInput id={`field-${path}`} data-testid={`field-${path}`} items={selected} readOnly={readOnly} placeholder="sales-agent-v1" onChange={(items) => update(path, items)} />
      </FieldFrame>
    );
  }
  const known = agentTypes.agents.filter((a) => a.agent_id !== self);
  const unknown = selected.filter((id) => !known.some((a) => a.agent_id === id));
  const toggle = (id: string, on: boolean) => update(path, on ? [...selected, id] : selected.filter((t) => t !== id));
  const option = (id: string, label: ReactNode, note?: ReactNode) => {
    const position = selected.indexOf(id);
    return (
      <li key={id} className="target-option">
        <label className="check">
          <input type="checkbox" data-testid={`field-${path}-${id}`} checked={position >= 0} disabled={readOnly} onChange={(e) => toggle(id, e.target.checked)} />
          <span>{label}</span>
          {note}
        </label>
        {position >= 0 && <FieldErrors path={`${path}.${position}`} />}
      </li>
    );
  };
  return (
    <div className={`field targets-field ${invalid ? "invalid" : ""}`} data-testid={`field-${path}`} id={`field-${path}`}>
      <span>Targets</span>
      <ul className="target-options">
        {known.map((a) =>
          option(
            a.agent_id,
            <>
              <strong>{a.name}</strong> <code className="muted">{a.agent_id}</code>
            </>,
            a.status !== "active" ? <span className={`chip status-${a.status}`}>{a.status}</span> : undefined,
          ),
        )}
        {unknown.map((id) => option(id, <code>{id}</code>, <span className="chip warn">{id === self ? "this type itself" : "no such type"}</span>))}
      </ul>
      {known.length === 0 && <p className="hint">There is no other agent type to transfer to yet.</p>}
      <p className="hint">The agent types the model may hand the conversation to (their capacity is claimed on transfer).</p>
      <FieldErrors path={path} />
    </div>
  );
}

// -- MCP's allowed tools -----------------------------------------------------------------

function AllowedTools({ path }: { path: string }) {
  const { draft, update, readOnly } = useDraft();
  const value = getAt(draft, path);
  const items = Array.isArray(value) ? value.map(String) : [];
  return (
    <FieldFrame path={path} label="Allowed tools" nested hint="Comma-separated; empty: all of the server's tools.">
      <ListInput id={`field-${path}`} data-testid={`field-${path}`} items={items} readOnly={readOnly} placeholder="search, fetch" onChange={(next) => update(path, next.length ? next : undefined)} />
    </FieldFrame>
  );
}

// -- adding a tool -----------------------------------------------------------------------

function AddTool({ tools, readOnly, onAdd }: { tools: ToolDraft[]; readOnly: boolean; onAdd: (kind: string) => void }) {
  const [open, setOpen] = useState(false);
  return (
    <div className="add-tool">
      <button type="button" className="add-row" data-testid="add-tool" aria-expanded={open} disabled={readOnly} onClick={() => setOpen(!open)}>
        + Add tool
      </button>
      {open && (
        <div className="tool-kinds" role="menu" aria-label="Kind of tool">
          {Object.entries(KINDS).map(([kind, info]) => {
            const present = info.single && tools.some((t) => t.kind === kind);
            return (
              <button
                key={kind}
                type="button"
                role="menuitem"
                className="tool-kind"
                data-testid={`add-tool-${kind}`}
                disabled={present}
                title={present ? `One ${kind} tool per agent type: this one has it` : undefined}
                onClick={() => {
                  onAdd(kind);
                  setOpen(false);
                }}
              >
                <strong>{info.label}</strong>
                <span className="hint">{present ? "already added (one per agent type)" : info.blurb}</span>
              </button>
            );
          })}
        </div>
      )}
    </div>
  );
}
