/** The routing rules: the strategy chain as JSON (schema-checked) and in words, saved with
 * If-Match, and a live preview of which agent type a metadata sample gets with the draft. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { usePageTitle } from "../a11y";
import { ApiError, request, type FieldProblem } from "../api";
import { useMe } from "../session";
import { LazyJsonEditor } from "../agents/LazyJsonEditor";
import { prettyJson } from "../agents/definition";
import { ago, exactTime } from "../agents/format";
import { routingRulesSchema, type EditorSchema } from "../agents/schema";
import { ChainView } from "../agents/routing/ChainView";
import { ResolvePreview, SAMPLE_METADATA } from "../agents/routing/ResolvePreview";
import type { ChainEntry, Resolution, StoredRules } from "../agents/routing/types";
import { RoutingGatePanel } from "../agents/routing/RoutingGatePanel";
import { OVERRIDE_HEADER, routingGateRefusal, type RoutingGateAgent } from "../evals/api";
import "./Routing.css";

type Outcome =
  | { kind: "saved"; version: number }
  | { kind: "error"; message: string; problems: FieldProblem[]; stale?: boolean }
  | { kind: "gate"; agents: RoutingGateAgent[]; detail: string };

/** The draft as rules, or null while it is not a `{"chain": [...]}` object. */
function parseChain(text: string): ChainEntry[] | null {
  try {
    const parsed = JSON.parse(text) as { chain?: unknown };
    return parsed && Array.isArray(parsed.chain) ? (parsed.chain as ChainEntry[]) : null;
  } catch {
    return null;
  }
}

export function RoutingPage() {
  const me = useMe();
  const readOnly = !me.can.write;
  const [stored, setStored] = useState<{ rules: StoredRules; etag: string } | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [text, setText] = useState("");
  const [schema, setSchema] = useState<EditorSchema | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [saving, setSaving] = useState(false);
  const [metadata, setMetadata] = useState(SAMPLE_METADATA);
  const [resolution, setResolution] = useState<Resolution | null>(null);

  const load = useCallback(async () => {
    try {
      const response = await request<StoredRules>("GET", "routing");
      setStored({ rules: response.body, etag: response.etag ?? `"${response.body.version}"` });
      setText(prettyJson({ chain: response.body.chain }));
      setOutcome(null);
      setLoadError(null);
    } catch (e) {
      setLoadError((e as Error).message);
    }
  }, []);

  useEffect(() => {
    void load();
    routingRulesSchema().then(setSchema, () => undefined); // without it the editor still edits, without hints
  }, [load]);

  const chain = useMemo(() => parseChain(text), [text]);
  const [lastGoodChain, setLastGoodChain] = useState<ChainEntry[] | null>(null);
  usePageTitle(stored || loadError ? "Routing" : null);
  useEffect(() => {
    if (chain) setLastGoodChain(chain);
  }, [chain]);

  const dirty = stored !== null && text !== prettyJson({ chain: stored.rules.chain });
  const problems = outcome?.kind === "error" ? outcome.problems : [];

  async function save(override?: string) {
    if (!stored) return;
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      setOutcome({ kind: "error", message: `The rules are not valid JSON: ${(e as Error).message}`, problems: [] });
      return;
    }
    setSaving(true);
    try {
      const headers = override ? { [OVERRIDE_HEADER]: override } : undefined;
      const response = await request<StoredRules>("PUT", "routing", { body, ifMatch: stored.etag, headers });
      setStored({ rules: response.body, etag: response.etag ?? `"${response.body.version}"` });
      setText(prettyJson({ chain: response.body.chain }));
      setOutcome({ kind: "saved", version: response.body.version });
    } catch (e) {
      const error = e as ApiError;
      const refusal = routingGateRefusal(error);
      if (refusal) {
        setOutcome({ kind: "gate", ...refusal });
      } else if (error.status === 412) {
        setOutcome({
          kind: "error",
          stale: true,
          problems: [],
          message: `Someone saved the rules meanwhile (now version ${error.problem?.current_version ?? "?"}); your draft was based on version ${stored.rules.version}. Nothing was saved.`,
        });
      } else {
        setOutcome({ kind: "error", message: error.message, problems: error.problem?.errors ?? [] });
      }
    } finally {
      setSaving(false);
    }
  }

  if (loadError) return <p className="error" role="alert">{loadError}</p>;
  if (!stored) return <div className="empty">Loading the routing rules…</div>;

  return (
    <div className="routing-page">
      <header className="page-head">
        <div>
          <h1>Routing</h1>
          <p className="sub">
            A room's metadata goes down the chain; the first strategy proposing an available agent type wins. Version{" "}
            <strong data-testid="rules-version">{stored.rules.version}</strong>
            {stored.rules.version === 0 ? " (the built-in defaults)" : ""}
            {stored.rules.updated_at && (
              <>
                , saved <span title={exactTime(stored.rules.updated_at)}>{ago(stored.rules.updated_at)}</span>
              </>
            )}
            .
          </p>
        </div>
      </header>

      {readOnly && (
        <p className="notice">
          Your key has the <strong>{me.role}</strong> role: you can read and preview the rules, not change them. Save still asks the API, which decides.
        </p>
      )}

      <div className="routing-grid">
        <section className="card rules-card">
          <div className="rules-bar">
            <h2>Rules</h2>
            <span className="actions">
              {dirty ? <span className="chip warn">Unsaved changes</span> : <span className="muted">No changes</span>}
              {dirty && (
                <button type="button" className="ghost" onClick={() => void load()}>
                  Discard
                </button>
              )}
              <button type="button" className="primary" onClick={() => void save()} disabled={saving} data-testid="rules-save">
                {saving ? "Saving…" : "Save rules"}
              </button>
            </span>
          </div>
          {outcome?.kind === "saved" && (
            <p className="success" role="status" data-testid="rules-saved">
              Saved as version {outcome.version}: the next room is routed with it.
            </p>
          )}
          {outcome?.kind === "gate" && <RoutingGatePanel agents={outcome.agents} detail={outcome.detail} onOverride={(reason) => void save(reason)} />}
          {outcome?.kind === "error" && (
            <div className="error" role="alert" data-testid="rules-error">
              {outcome.message}
              {outcome.problems.length > 0 && (
                <ul>
                  {outcome.problems.map((p, i) => (
                    <li key={i} data-field={p.field}>
                      <code>{p.field}</code> {p.message}
                    </li>
                  ))}
                </ul>
              )}
              {outcome.stale && (
                <div className="actions">
                  <button type="button" onClick={() => void load()} data-testid="rules-reload">
                    Discard my draft, load the current rules
                  </button>
                </div>
              )}
            </div>
          )}
          <LazyJsonEditor value={text} onChange={setText} schema={schema} problems={problems} readOnly={readOnly} testId="rules-editor" label="Routing rules (JSON)" />
        </section>

        <ResolvePreview chain={chain} metadata={metadata} onMetadata={setMetadata} onResolved={setResolution} />
      </div>

      <section className="chain-section">
        <h2>The chain, in order</h2>
        {!chain && <p className="notice">The draft is not valid rules JSON yet: showing the last version that was.</p>}
        <ChainView chain={chain ?? lastGoodChain ?? stored.rules.chain} trail={chain ? (resolution?.trail ?? null) : null} />
      </section>
    </div>
  );
}
