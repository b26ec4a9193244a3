/** The left column: which agent type (or "route me"), the room metadata, the routing preview,
 * the model notice and the join buttons. */
import { useEffect, useRef } from "react";
import type { AgentConfig, Resolution } from "../types";
import { supportsVoice, type VersionEntry } from "./agents";
import type { ParsedMetadata } from "./metadata";
import type { Modality } from "./model";
import { ModelNotice } from "./ModelNotice";
import { ResolvePreview } from "./ResolvePreview";

export type ResolveState =
  | { status: "idle" }
  | { status: "loading" }
  | { status: "done"; result: Resolution; stale: boolean }
  | { status: "error"; message: string };

export interface SetupProps {
  agents: AgentConfig[] | null;
  agentsError: string | null;
  agentId: string;
  onAgentId: (id: string) => void;
  versions: VersionEntry[] | null;
  version: number | null;
  onVersion: (version: number | null) => void;
  metadataText: string;
  onMetadataText: (text: string) => void;
  metadata: ParsedMetadata;
  resolve: ResolveState;
  onResolve: () => void;
  /** The type the user would talk to: the pick (at the picked version), or the routed one. */
  target: AgentConfig | null;
  canMint: boolean;
  busy: boolean;
  onJoin: (modality: Modality) => void;
}

export function Setup(props: SetupProps) {
  const { agents, agentId, metadata, target, busy } = props;
  const picked = agents?.find((a) => a.agent_id === agentId) ?? null;
  const voiceOk = supportsVoice(target);
  const box = useRef<HTMLElement>(null);
  // Joining scrolls this column to its join buttons; once in, show what the session runs on.
  useEffect(() => {
    if (busy && box.current) box.current.scrollTop = 0;
  }, [busy]);
  return (
    <section className="card pg-setup" aria-label="Session setup" ref={box}>
      <div className="pg-column-head">
        <h2>Setup</h2>
      </div>

      <label className="field">
        <span>Agent type</span>
        <select data-testid="agent-select" value={agentId} onChange={(e) => props.onAgentId(e.target.value)} disabled={busy}>
          <option value="">Route me (the routing rules decide)</option>
          {(agents ?? []).map((a) => (
            <option key={a.agent_id} value={a.agent_id} disabled={a.status === "archived"}>
              {a.name} ({a.agent_id}){a.status !== "active" ? ` · ${a.status}` : ""}
            </option>
          ))}
        </select>
        {props.agentsError && <span className="field-error">{props.agentsError}</span>}
      </label>

      {picked && <AgentFacts config={picked} />}

      {picked && (
        <label className="field">
          <span>Version</span>
          <select
            data-testid="version-select"
            value={props.version ?? ""}
            onChange={(e) => props.onVersion(e.target.value ? Number(e.target.value) : null)}
            disabled={busy || !props.versions}
          >
            <option value="">Current (v{picked.version})</option>
            {(props.versions ?? []).map((v) => (
              <option key={v.version} value={v.version}>
                v{v.version} · saved {new Date(v.saved_at).toLocaleString()}
              </option>
            ))}
          </select>
        </label>
      )}

      <label className={`field${metadata.ok ? "" : " invalid"}`}>
        <span>Room metadata (JSON)</span>
        <textarea
          className="mono pg-metadata"
          data-testid="metadata-input"
          value={props.metadataText}
          onChange={(e) => props.onMetadataText(e.target.value)}
          spellCheck={false}
          rows={5}
          disabled={busy}
          aria-invalid={!metadata.ok}
        />
        {!metadata.ok ? (
          <span className="field-error" data-testid="field-error" data-field="metadata">{metadata.error}</span>
        ) : (
          <p className="hint">
            <code>purpose</code>, <code>user_id</code>, <code>user_details</code>, …; a picked type is added as{" "}
            <code>agent_id</code>.
          </p>
        )}
      </label>

      <button data-testid="resolve-button" onClick={props.onResolve} disabled={!metadata.ok || props.resolve.status === "loading"}>
        {props.resolve.status === "loading" ? "Resolving…" : "Preview routing"}
      </button>
      {props.resolve.status === "error" && <p className="error pg-gap">{props.resolve.message}</p>}
      {props.resolve.status === "done" && <ResolvePreview resolution={props.resolve.result} stale={props.resolve.stale} />}

      <div className="pg-gap">
        <ModelNotice config={target} pending={agentId ? "Loading the agent type…" : null} />
      </div>

      {props.canMint ? (
        <div className="pg-join">
          <button className="primary" data-testid="join-text" onClick={() => props.onJoin("text")} disabled={busy || !metadata.ok}>
            Join by text
          </button>
          <button
            className="primary"
            data-testid="join-voice"
            onClick={() => props.onJoin("voice")}
            disabled={busy || !metadata.ok || !voiceOk}
            title={voiceOk ? "Microphone on; the agent's voice is played back" : `${target?.agent_id} is text only (modalities: ${target?.modalities.join(", ")})`}
          >
            Join by voice
          </button>
        </div>
      ) : (
        <p className="notice pg-gap" data-testid="playground-unavailable">
          This key's role cannot mint room tokens, so it cannot join a session here (the API refuses{" "}
          <code>POST /api/v1/token</code>). The routing preview above works. Log in with an admin key to talk to an agent.
        </p>
      )}
    </section>
  );
}

function AgentFacts({ config }: { config: AgentConfig }) {
  return (
    <div className="pg-facts">
      <span className={`chip status-${config.status}`}>{config.status}</span>
      <span className="chip neutral">v{config.version}</span>
      {config.purposes.map((p) => <span className="chip" key={p}>{p}</span>)}
      {config.modalities.map((m) => <span className="chip neutral" key={m}>{m}</span>)}
      {config.description && <p className="hint pg-facts-text">{config.description}</p>}
    </div>
  );
}
