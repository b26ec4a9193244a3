/** Every agent type: status, purposes, modalities, model, version, last change. A row opens the
 * type; "New agent type" creates one from a template. */
import { useEffect, useMemo, useState } from "react";
import { get } from "../api";
import { href, navigate } from "../router";
import type { AgentConfig, AgentPage, AgentStatus } from "../types";
import { ago, exactTime } from "../agents/format";
import { NewAgentDialog } from "../agents/NewAgentDialog";
import { usePageTitle } from "../a11y";
import "./AgentList.css";

type StatusFilter = AgentStatus | "all";
const FILTERS: StatusFilter[] = ["all", "active", "paused", "archived"];

/** Every page of GET /agents (cursor by cursor): the console lists them all. */
async function allAgents(): Promise<AgentConfig[]> {
  const agents: AgentConfig[] = [];
  let cursor: string | null = null;
  do {
    const page: AgentPage = await get<AgentPage>("agents", { limit: 100, cursor });
    agents.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return agents;
}

export function AgentList() {
  const [agents, setAgents] = useState<AgentConfig[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [filter, setFilter] = useState<StatusFilter>("all");
  const [search, setSearch] = useState("");
  const [creating, setCreating] = useState(false);
  usePageTitle("Agent types");

  useEffect(() => {
    allAgents().then(setAgents, (e: Error) => setError(e.message));
  }, []);

  const shown = useMemo(() => {
    const needle = search.trim().toLowerCase();
    return (agents ?? []).filter(
      (a) =>
        (filter === "all" || a.status === filter) &&
        (!needle || [a.agent_id, a.name, a.description, ...a.purposes].some((s) => s?.toLowerCase().includes(needle))),
    );
  }, [agents, filter, search]);

  const count = (status: StatusFilter) => (agents ?? []).filter((a) => status === "all" || a.status === status).length;

  return (
    <div className="agent-list">
      <header className="page-head">
        <div>
          <h1>Agent types</h1>
          <p className="sub">Each type is a configuration the worker loads per room: instructions, models, voice, turn fields.</p>
        </div>
        <div className="actions">
          <button type="button" className="primary" onClick={() => setCreating(true)} data-testid="new-agent">
            + New agent type
          </button>
        </div>
      </header>

      <div className="list-tools">
        <div className="segmented" role="group" aria-label="Status">
          {FILTERS.map((f) => (
            <button key={f} type="button" className={filter === f ? "active" : ""} aria-pressed={filter === f} onClick={() => setFilter(f)} data-testid={`agent-filter-${f}`}>
              {f === "all" ? "All" : f[0].toUpperCase() + f.slice(1)} <span className="count">{count(f)}</span>
            </button>
          ))}
        </div>
        <input type="search" className="search" placeholder="Search name, id, purpose…" value={search} onChange={(e) => setSearch(e.target.value)} aria-label="Search agent types" data-testid="agent-search" />
      </div>

      {error && <p className="error" role="alert">{error}</p>}
      {!agents && !error && <div className="empty">Loading agent types…</div>}
      {agents && (
        <div className="card table-card">
          <table className="list">
            <thead>
              <tr>
                <th>Agent type</th>
                <th>Status</th>
                <th>Purposes</th>
                <th>Modalities</th>
                <th>Model</th>
                <th className="num">Version</th>
                <th>Updated</th>
              </tr>
            </thead>
            <tbody>
              {shown.map((agent) => (
                <tr
                  key={agent.agent_id}
                  className="clickable"
                  data-testid="agent-row"
                  data-agent-id={agent.agent_id}
                  data-status={agent.status}
                  // the name's link is the row's one Tab stop; a click anywhere on the row is for the mouse
                  onClick={() => navigate(href("agents", agent.agent_id))}
                >
                  <td>
                    <a className="agent-name" href={href("agents", agent.agent_id)} onClick={(e) => e.stopPropagation()}>
                      {agent.name}
                    </a>
                    <div className="mono muted">{agent.agent_id}</div>
                    {agent.description && <div className="description">{agent.description}</div>}
                  </td>
                  <td>
                    <span className={`chip status-${agent.status}`}>{agent.status}</span>
                  </td>
                  <td>
                    <div className="chips">
                      {agent.purposes.length ? agent.purposes.map((p) => <span key={p} className="chip">{p}</span>) : <span className="muted">—</span>}
                    </div>
                  </td>
                  <td>
                    <div className="chips">
                      {agent.modalities.map((m) => (
                        <span key={m} className="chip neutral">
                          {m}
                        </span>
                      ))}
                    </div>
                  </td>
                  <td>
                    <span className="mono">{agent.llm.model}</span>
                    <div className="muted small">{agent.llm.provider}</div>
                  </td>
                  <td className="num">v{agent.version}</td>
                  <td title={exactTime(agent.updated_at)}>{ago(agent.updated_at)}</td>
                </tr>
              ))}
              {!shown.length && (
                <tr>
                  <td colSpan={7} className="muted center">
                    {agents.length ? "No agent type matches." : "No agent types yet: create one."}
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      {creating && <NewAgentDialog existing={agents ?? []} onClose={() => setCreating(false)} />}
    </div>
  );
}
