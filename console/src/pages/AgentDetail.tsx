/** One agent type: header (name, id, status, version, lifecycle) and the tabs edit / versions /
 * evals / stats (`#/agents/<id>/<tab>`; the evals tab's run and comparison in the query). The editor state lives here, so a draft survives a tab switch. */
import { useCallback, useState } from "react";
import { href } from "../router";
import { usePageTitle } from "../a11y";
import { ConfirmDialog, type Confirmation } from "../agents/ConfirmDialog";
import { AgentEditor } from "../agents/AgentEditor";
import { VersionsTab } from "../agents/VersionsTab";
import { OutcomeBanner } from "../agents/OutcomeBanner";
import { useAgentEditor, type AgentEditorState } from "../agents/useAgentEditor";
import { ago, exactTime } from "../agents/format";
import { AgentStats } from "../sessions/AgentStats";
import { EvalsTab } from "../evals/EvalsTab";
import "./AgentDetail.css";

const TABS = [
  { id: "edit", label: "Definition" },
  { id: "versions", label: "Versions" },
  { id: "evals", label: "Evals" },
  { id: "stats", label: "Stats" },
] as const;

type Tab = (typeof TABS)[number]["id"];

export function AgentDetail({ agentId, tab, query }: { agentId: string; tab?: string; query: URLSearchParams }) {
  // A new id is a new page: nothing of one type's draft leaks into another's.
  const known = TABS.find((t) => t.id === tab)?.id ?? "edit";
  return <AgentPage key={agentId} agentId={agentId} tab={known} query={query} />;
}

function AgentPage({ agentId, tab, query }: { agentId: string; tab: Tab; query: URLSearchParams }) {
  const editor = useAgentEditor(agentId);
  const [confirmation, setConfirmation] = useState<Confirmation | null>(null);
  const closeConfirmation = useCallback(() => setConfirmation(null), []);
  const tabLabel = TABS.find((t) => t.id === tab)?.label ?? "";
  usePageTitle(
    editor.server ? `${editor.server.config.name} · ${tabLabel} · Agent types` : editor.loadError ? `Agent type ${agentId} not found` : null,
  );

  if (editor.loadError) {
    return (
      <div className="agent-detail">
        <a className="back" href={href("agents")}>← Agent types</a>
        <p className="error" role="alert">
          {editor.loadError.status === 404 ? `There is no agent type "${agentId}".` : editor.loadError.message}
        </p>
      </div>
    );
  }
  if (!editor.server) return <div className="empty">Loading {agentId}…</div>;

  return (
    <div className="agent-detail">
      <AgentHeader editor={editor} confirm={setConfirmation} />
      <nav className="subtabs" aria-label="Agent type">
        {TABS.map((t) => (
          <a
            key={t.id}
            href={t.id === "edit" ? href("agents", agentId) : href("agents", agentId, t.id)}
            className={tab === t.id ? "subtab active" : "subtab"}
            aria-current={tab === t.id ? "page" : undefined}
            data-testid={`tab-${t.id}`}
          >
            {t.label}
            {t.id === "edit" && editor.dirty && <span className="dot" title="Unsaved changes" />}
          </a>
        ))}
      </nav>
      <OutcomeBanner editor={editor} />
      {tab === "edit" && <AgentEditor editor={editor} />}
      {tab === "versions" && <VersionsTab editor={editor} confirm={setConfirmation} />}
      {tab === "evals" && <EvalsTab editor={editor} query={query} />}
      {tab === "stats" && <AgentStats agentId={agentId} />}
      <ConfirmDialog confirmation={confirmation} onClose={closeConfirmation} />
    </div>
  );
}

function AgentHeader({ editor, confirm }: { editor: AgentEditorState; confirm: (c: Confirmation) => void }) {
  const config = editor.server!.config;
  const busy = editor.busy !== null;
  const askArchive = () =>
    confirm({
      title: `Archive ${config.name}?`,
      body: (
        <p>
          The routing skips an archived type from the next room on, and the playground no longer offers it. Its history is kept;
          <strong> Resume</strong> brings it back.
        </p>
      ),
      action: "Archive",
      danger: true,
      onConfirm: () => void editor.lifecycle("archive"),
    });
  return (
    <header className="page-head agent-head">
      <div>
        <a className="back" href={href("agents")}>← Agent types</a>
        <h1>
          {config.name}
          <span className={`chip status-${config.status}`} data-testid="status" data-status={config.status}>
            {config.status}
          </span>
        </h1>
        <p className="sub">
          <code>{config.agent_id}</code> · <span data-testid="version" data-version={config.version}>version {config.version}</span> · updated{" "}
          <span title={exactTime(config.updated_at)}>{ago(config.updated_at)}</span> · {config.llm.provider}/{config.llm.model ?? "?"}
        </p>
      </div>
      <div className="actions">
        <a className="button" href={`${href("playground")}?agent=${encodeURIComponent(config.agent_id)}`}>
          Try in playground
        </a>
        {config.status === "active" ? (
          <button type="button" onClick={() => void editor.lifecycle("pause")} disabled={busy} data-testid="pause" title="The routing skips a paused type">
            Pause
          </button>
        ) : (
          <button type="button" onClick={() => void editor.lifecycle("resume")} disabled={busy} data-testid="resume">
            Resume
          </button>
        )}
        {config.status !== "archived" && (
          <button type="button" className="danger" onClick={askArchive} disabled={busy} data-testid="archive">
            Archive
          </button>
        )}
      </div>
    </header>
  );
}
