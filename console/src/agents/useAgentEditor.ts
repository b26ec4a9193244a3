/** One agent type being looked at and edited: the server's current version and ETag, the draft
 * and the version it started from, and every action on them (save, validate, lifecycle,
 * rollback, reload). The detail page holds it, so the draft survives switching tabs.
 *
 * The draft is sent only as a whole (PUT with If-Match = the ETag it started from): a 422
 * changes nothing on the server and nothing here but the problems shown; a 412 keeps the draft
 * and explains who saved in between; nothing is ever merged or overwritten silently. */
import { useCallback, useEffect, useMemo, useState } from "react";
import { ApiError, request, type FieldProblem } from "../api";
import type { AgentConfig } from "../types";
import { activateVersion, gateRefusal, OVERRIDE_HEADER, type GateRefusal } from "../evals/api";
import { definitionOf, prettyJson, sameJson, setAt, type Definition, type Json } from "./definition";
import { agentEvents, type AuditEvent } from "./history";

export interface Loaded {
  config: AgentConfig;
  etag: string;
}

export type EditorMode = "form" | "json";

export interface Conflict {
  /** The version the draft started from. */
  base: number;
  current: Loaded;
  /** The changes saved after `base`, oldest first (from the audit trail). */
  changes: AuditEvent[];
}

/** What the release gate refused, so that an admin can send it again with a reason. */
export type GatedAction = { kind: "activate"; version: number } | { kind: "resume" };

export type Outcome =
  | { kind: "saved"; version: number }
  /** A gated type's save (or rollback) answered 202: filed as this version, not live. */
  | { kind: "candidate"; version: number }
  | { kind: "activated"; version: number; overridden: boolean }
  | { kind: "gate"; refusal: GateRefusal; action: GatedAction }
  | { kind: "valid" }
  | { kind: "error"; message: string; status: number; during: "save" | "action" }
  | { kind: "conflict"; conflict: Conflict };

const path = (agentId: string) => `agents/${encodeURIComponent(agentId)}`;

function messageOf(error: unknown): { message: string; status: number } {
  if (error instanceof ApiError) return { message: error.message, status: error.status };
  return { message: String((error as Error)?.message ?? error), status: 0 };
}

export function useAgentEditor(agentId: string) {
  const [server, setServer] = useState<Loaded | null>(null);
  const [loadError, setLoadError] = useState<{ message: string; status: number } | null>(null);
  const [base, setBase] = useState<Loaded | null>(null);
  const [draft, setDraft] = useState<Definition>({});
  const [mode, setMode] = useState<EditorMode>("form");
  const [jsonText, setJsonText] = useState("");
  const [jsonInvalid, setJsonInvalid] = useState<string | null>(null);
  const [problems, setProblems] = useState<FieldProblem[]>([]);
  const [outcome, setOutcome] = useState<Outcome | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  /** Bumped by every write, so the versions list also reloads after a candidate (which leaves
   * the current version where it was). */
  const [writes, setWrites] = useState(0);

  /** Start over from a server version: the draft, the JSON text and the problems all reset. */
  const startFrom = useCallback((loaded: Loaded) => {
    const definition = definitionOf(loaded.config);
    setServer(loaded);
    setBase(loaded);
    setDraft(definition);
    setJsonText(prettyJson(definition));
    setJsonInvalid(null);
    setProblems([]);
  }, []);

  const fetchCurrent = useCallback(async (): Promise<Loaded> => {
    const response = await request<AgentConfig>("GET", path(agentId));
    return { config: response.body, etag: response.etag ?? `"${response.body.version}"` };
  }, [agentId]);

  const reload = useCallback(async () => {
    try {
      startFrom(await fetchCurrent());
      setLoadError(null);
      setOutcome(null);
    } catch (error) {
      setLoadError(messageOf(error));
    }
  }, [fetchCurrent, startFrom]);

  useEffect(() => {
    void reload();
  }, [reload]);

  const dirty = useMemo(() => base !== null && !sameJson(draft, definitionOf(base.config)), [base, draft]);

  const update = useCallback((at: string, value: Json | undefined) => {
    setDraft((current) => setAt(current, at, value));
    setOutcome((o) => (o?.kind === "saved" || o?.kind === "valid" ? null : o));
  }, []);

  /** JSON mode: the text is the source; the draft follows it whenever it parses to an object. */
  const editJson = useCallback((text: string) => {
    setJsonText(text);
    setOutcome((o) => (o?.kind === "saved" || o?.kind === "valid" ? null : o));
    try {
      const parsed = JSON.parse(text) as Json;
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("the definition must be a JSON object { ... }");
      setDraft(parsed as Definition);
      setJsonInvalid(null);
    } catch (error) {
      setJsonInvalid((error as Error).message);
    }
  }, []);

  /** Switching keeps the draft; JSON that does not parse cannot become a form, so it stays. */
  const switchMode = useCallback(
    (next: EditorMode) => {
      if (next === mode) return;
      if (next === "json") {
        setJsonText(prettyJson(draft));
        setJsonInvalid(null);
      } else if (jsonInvalid) {
        setOutcome({ kind: "error", during: "save", status: 0, message: `Fix the JSON first (${jsonInvalid}): the form shows a definition, not broken text.` });
        return;
      }
      setMode(next);
    },
    [draft, jsonInvalid, mode],
  );

  const describeConflict = useCallback(
    async (baseVersion: number): Promise<Conflict> => {
      const current = await fetchCurrent();
      setServer(current); // the header shows what the server has; the draft keeps its base
      const events = await agentEvents(agentId).catch(() => [] as AuditEvent[]);
      const changes = events.filter((e) => (e.version ?? 0) > baseVersion).sort((a, b) => (a.version ?? 0) - (b.version ?? 0));
      return { base: baseVersion, current, changes };
    },
    [agentId, fetchCurrent],
  );

  const save = useCallback(async () => {
    if (!base) return;
    if (mode === "json" && jsonInvalid) {
      setOutcome({ kind: "error", during: "save", status: 0, message: `The JSON does not parse: ${jsonInvalid}` });
      return;
    }
    setBusy("save");
    setOutcome(null);
    try {
      const response = await request<AgentConfig>("PUT", path(agentId), { body: draft, ifMatch: base.etag });
      setWrites((n) => n + 1);
      if (response.status === 202) {
        // The current version is unchanged (so is its ETag): the draft stays as it was saved.
        setProblems([]);
        setOutcome({ kind: "candidate", version: response.body.version });
        return;
      }
      const saved = { config: response.body, etag: response.etag ?? `"${response.body.version}"` };
      startFrom(saved);
      setOutcome({ kind: "saved", version: saved.config.version });
    } catch (error) {
      if (error instanceof ApiError && error.status === 422) {
        setProblems(error.problem.errors ?? [{ field: "(body)", message: error.message }]);
        setOutcome({ kind: "error", during: "save", status: 422, message: "Nothing was saved: fix the fields marked below." });
      } else if (error instanceof ApiError && error.status === 412) {
        setProblems([]);
        try {
          setOutcome({ kind: "conflict", conflict: await describeConflict(base.config.version) });
        } catch (inner) {
          setOutcome({ kind: "error", during: "save", ...messageOf(inner) });
        }
      } else {
        setOutcome({ kind: "error", during: "save", ...messageOf(error) });
      }
    } finally {
      setBusy(null);
    }
  }, [agentId, base, describeConflict, draft, jsonInvalid, mode, startFrom]);

  /** POST /agents/validate: the same checks as a save, nothing written. */
  const validate = useCallback(async () => {
    if (mode === "json" && jsonInvalid) {
      setOutcome({ kind: "error", during: "save", status: 0, message: `The JSON does not parse: ${jsonInvalid}` });
      return;
    }
    setBusy("validate");
    try {
      const report = (await request<{ valid: boolean; errors: FieldProblem[] }>("POST", "agents/validate", { body: draft })).body;
      setProblems(report.errors);
      setOutcome(report.valid ? { kind: "valid" } : { kind: "error", during: "save", status: 422, message: "Not valid: see the fields marked below." });
    } catch (error) {
      setOutcome({ kind: "error", during: "save", ...messageOf(error) });
    } finally {
      setBusy(null);
    }
  }, [draft, jsonInvalid, mode]);

  /** After our own status change the definition is unchanged, so an unsaved draft that was
   * based on the current version moves onto the new one instead of meeting a 412 at its next
   * save. A draft already behind (a conflict shown) stays behind: moving it would hide that. */
  const adopt = useCallback(
    (loaded: Loaded, keepDraft: boolean) => {
      const draftWasCurrent = base !== null && server !== null && base.config.version === server.config.version;
      if (keepDraft && dirty && draftWasCurrent) {
        setServer(loaded);
        setBase(loaded);
      } else if (keepDraft && dirty) {
        setServer(loaded);
      } else {
        startFrom(loaded);
      }
    },
    [base, dirty, server, startFrom],
  );

  const lifecycle = useCallback(
    async (action: "pause" | "resume" | "archive", override?: string) => {
      if (!server) return;
      setBusy(action);
      try {
        const method = action === "archive" ? "DELETE" : "POST";
        const url = action === "archive" ? path(agentId) : `${path(agentId)}/${action}`;
        const headers = override ? { [OVERRIDE_HEADER]: override } : undefined;
        const response = await request<AgentConfig>(method, url, { ifMatch: server.etag, headers });
        adopt({ config: response.body, etag: response.etag ?? `"${response.body.version}"` }, true);
        setWrites((n) => n + 1);
        setOutcome(null);
      } catch (error) {
        const refusal = gateRefusal(error);
        if (refusal) {
          setOutcome({ kind: "gate", refusal, action: { kind: "resume" } });
        } else if (error instanceof ApiError && error.status === 412) {
          setOutcome({ kind: "conflict", conflict: await describeConflict(server.config.version) });
        } else {
          setOutcome({ kind: "error", during: "action", ...messageOf(error) });
        }
      } finally {
        setBusy(null);
      }
    },
    [adopt, agentId, describeConflict, server],
  );

  /** Rollback makes version n's definition current as a new version; the draft restarts there. */
  const rollback = useCallback(
    async (version: number) => {
      if (!server) return;
      setBusy("rollback");
      try {
        const response = await request<AgentConfig>("POST", `${path(agentId)}/rollback`, { body: { version }, ifMatch: server.etag });
        setWrites((n) => n + 1);
        if (response.status === 202) {
          setOutcome({ kind: "candidate", version: response.body.version });
          return response.body.version;
        }
        adopt({ config: response.body, etag: response.etag ?? `"${response.body.version}"` }, false);
        setOutcome({ kind: "saved", version: response.body.version });
        return response.body.version;
      } catch (error) {
        if (error instanceof ApiError && error.status === 412) {
          setOutcome({ kind: "conflict", conflict: await describeConflict(server.config.version) });
        } else {
          setOutcome({ kind: "error", during: "action", ...messageOf(error) });
        }
        return null;
      } finally {
        setBusy(null);
      }
    },
    [adopt, agentId, describeConflict, server],
  );

  /** Makes a filed version (a candidate) current. The gate may refuse it (409): the outcome
   * then names the failing scenarios, and an admin may send it again with `override`, a reason
   * the API audits. Like a rollback, the draft restarts at the version made current. */
  const activate = useCallback(
    async (version: number, override?: string) => {
      if (!server) return;
      setBusy("activate");
      try {
        const response = await activateVersion(agentId, version, server.etag, override);
        adopt({ config: response.body, etag: response.etag ?? `"${response.body.version}"` }, false);
        setWrites((n) => n + 1);
        setOutcome({ kind: "activated", version: response.body.version, overridden: Boolean(override) });
      } catch (error) {
        const refusal = gateRefusal(error);
        if (refusal) {
          setOutcome({ kind: "gate", refusal: { ...refusal, version: refusal.version ?? version }, action: { kind: "activate", version } });
        } else if (error instanceof ApiError && error.status === 412) {
          setOutcome({ kind: "conflict", conflict: await describeConflict(server.config.version) });
        } else {
          setOutcome({ kind: "error", during: "action", ...messageOf(error) });
        }
      } finally {
        setBusy(null);
      }
    },
    [adopt, agentId, describeConflict, server],
  );

  /** Sends what the gate refused again, with the admin's reason in the override header. */
  const overrideGate = useCallback(
    async (action: GatedAction, reason: string) => {
      if (action.kind === "activate") await activate(action.version, reason);
      else await lifecycle("resume", reason);
    },
    [activate, lifecycle],
  );

  /** Conflict: keep the draft and base it on the newer version; the next save overwrites that
   * version, knowingly (the user has seen who changed what). */
  const keepDraftOn = useCallback((current: Loaded) => {
    setServer(current);
    setBase(current);
    setOutcome(null);
  }, []);

  return {
    agentId,
    server,
    loadError,
    base,
    draft,
    dirty,
    mode,
    jsonText,
    jsonInvalid,
    problems,
    outcome,
    busy,
    update,
    editJson,
    switchMode,
    save,
    validate,
    lifecycle,
    rollback,
    activate,
    overrideGate,
    writes,
    reload,
    keepDraftOn,
    dismiss: () => setOutcome(null),
  };
}

export type AgentEditorState = ReturnType<typeof useAgentEditor>;
