/** Every saved version, newest first, with who made it (the audit trail); a diff between any
 * two; rollback to one (a new version with its definition, after a confirmation). A gated
 * type's candidates (filed, never live) are marked and can be activated. */
import "./agents.css";
import { useCallback, useEffect, useState } from "react";
import { get } from "../api";
import type { AgentConfig, AgentStatus } from "../types";
import type { Confirmation } from "./ConfirmDialog";
import { diffableJson, versionContent } from "./definition";
import { DiffView } from "./DiffView";
import { ago, exactTime } from "./format";
import { agentEvents, describeEvent, eventsByVersion, type AuditEvent } from "./history";
import type { AgentEditorState } from "./useAgentEditor";

interface VersionEntry {
  version: number;
  status: AgentStatus;
  saved_at: string;
  /** Filed by a gated save, never made current (absent before the release gate existed). */
  candidate?: boolean;
}

export function VersionsTab({ editor, confirm }: { editor: AgentEditorState; confirm: (c: Confirmation) => void }) {
  const agentId = editor.agentId;
  const currentVersion = editor.server?.config.version ?? 0;
  const [versions, setVersions] = useState<VersionEntry[] | null>(null);
  const [events, setEvents] = useState<Map<number, AuditEvent>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [from, setFrom] = useState<number | null>(null);
  const [to, setTo] = useState<number | null>(null);

  const load = useCallback(async () => {
    try {
      const list = await get<{ items: VersionEntry[] }>(`agents/${encodeURIComponent(agentId)}/versions`);
      setVersions(list.items);
      const newest = list.items[0]?.version ?? null;
      setTo((t) => t ?? newest);
      setFrom((f) => f ?? list.items[1]?.version ?? newest ?? null);
      setError(null);
      // Actors are a nicety: a key without access to events still sees the versions.
      agentEvents(agentId).then((e) => setEvents(eventsByVersion(e)), () => undefined);
    } catch (e) {
      setError((e as Error).message);
    }
  }, [agentId]);

  // Reload whenever the current version moves (a save, a rollback, a pause) or a candidate is
  // filed (the current version stays).
  useEffect(() => {
    void load();
  }, [load, currentVersion, editor.writes]);

  // A new version takes the number after the newest filed one (candidates count), not after the current.
  const next = Math.max(currentVersion, versions?.[0]?.version ?? 0) + 1;
  const gated = editor.server?.config.release_gate === true;
  const askRollback = (version: number) =>
    confirm({
      title: `Roll back to version ${version}?`,
      body: (
        <p>
          {gated ? (
            <>
              Version {version}'s definition is saved as <strong>version {next}</strong>; this type is gated, so it goes live at once only
              if that definition has a passing run, else it is filed as a candidate.
            </>
          ) : (
            <>
              Version {version}'s definition becomes current again, saved as <strong>version {next}</strong>.
            </>
          )}{" "}
          Nothing is deleted: every version stays in this list.{editor.dirty && " Your unsaved edits in the editor are discarded."}
        </p>
      ),
      action: `Roll back to v${version}`,
      onConfirm: async () => {
        const saved = await editor.rollback(version);
        if (saved != null) {
          setFrom(version);
          setTo(saved);
        }
      },
    });

  if (error) return <p className="error" role="alert">{error}</p>;
  if (!versions) return <div className="empty">Loading versions…</div>;

  return (
    <div className="versions grid">
      <div className="card table-card">
        <table className="list">
          <thead>
            <tr>
              <th>Version</th>
              <th>Status</th>
              <th>Saved</th>
              <th>By</th>
              <th aria-label="Actions" />
            </tr>
          </thead>
          <tbody>
            {versions.map((v) => {
              const event = events.get(v.version);
              const current = v.version === currentVersion;
              return (
                <tr
                  key={v.version}
                  data-testid="version-row"
                  data-version={v.version}
                  data-candidate={v.candidate ? "true" : "false"}
                  className={current ? "current" : undefined}
                >
                  <td>
                    <strong>v{v.version}</strong> {current && <span className="chip neutral">current</span>}
                    {v.candidate && (
                      <span className="chip warn" data-testid="version-candidate" title="Filed by a gated save: live only after a passing run or an override">
                        candidate, not live
                      </span>
                    )}
                  </td>
                  <td>
                    <span className={`chip status-${v.status}`}>{v.status}</span>
                  </td>
                  <td title={exactTime(v.saved_at)}>{ago(v.saved_at)}</td>
                  <td data-testid="version-actor">
                    {event ? (
                      <>
                        <span className="actor">{event.actor}</span> <span className="muted">{describeEvent(event)}</span>
                      </>
                    ) : (
                      <span className="muted">—</span>
                    )}
                  </td>
                  <td className="row-actions">
                    <button type="button" className="link" title={`Compare v${v.version} with the current version`} onClick={() => { setFrom(v.version); setTo(currentVersion); }} disabled={current}>
                      Diff
                    </button>
                    {v.candidate ? (
                      <button type="button" data-testid="activate" aria-label={`Activate v${v.version}`} disabled={editor.busy !== null} onClick={() => void editor.activate(v.version)}>
                        Activate
                      </button>
                    ) : (
                      <button type="button" data-testid="rollback" disabled={current || editor.busy !== null} onClick={() => askRollback(v.version)}>
                        Roll back
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>

      <div className="card">
        <div className="diff-pickers">
          <h2>Compare</h2>
          <label>
            from
            <select value={from ?? ""} onChange={(e) => setFrom(Number(e.target.value))} data-testid="diff-from">
              {versions.map((v) => (
                <option key={v.version} value={v.version}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
          <label>
            to
            <select value={to ?? ""} onChange={(e) => setTo(Number(e.target.value))} data-testid="diff-to">
              {versions.map((v) => (
                <option key={v.version} value={v.version}>
                  v{v.version}
                </option>
              ))}
            </select>
          </label>
        </div>
        {from !== null && to !== null && <VersionDiff agentId={agentId} from={from} to={to} />}
      </div>
    </div>
  );
}

/** Versions never change once saved, so each is fetched once per page view. */
const versionCache = new Map<string, Promise<AgentConfig>>();

function fetchVersion(agentId: string, version: number): Promise<AgentConfig> {
  const key = `${agentId}@${version}`;
  let found = versionCache.get(key);
  if (!found) {
    found = get<AgentConfig>(`agents/${encodeURIComponent(agentId)}/versions/${version}`);
    found.catch(() => versionCache.delete(key));
    versionCache.set(key, found);
  }
  return found;
}

function VersionDiff({ agentId, from, to }: { agentId: string; from: number; to: number }) {
  const [texts, setTexts] = useState<{ before: string; after: string; from: number; to: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    Promise.all([fetchVersion(agentId, from), fetchVersion(agentId, to)]).then(
      ([a, b]) => live && setTexts({ before: diffableJson(versionContent(a)), after: diffableJson(versionContent(b)), from, to }),
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [agentId, from, to]);
  if (error) return <p className="error">{error}</p>;
  if (!texts || texts.from !== from || texts.to !== to) return <div className="muted">Loading the diff…</div>;
  return <DiffView before={texts.before} after={texts.after} beforeLabel={`v${from}`} afterLabel={`v${to}`} />;
}
