/** The playground: pick an agent type (or let the routing pick), see where the metadata would
 * route and on which model, then talk to it by text or voice and watch every turn live. */
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, post } from "../api";
import { useMe } from "../session";
import { focusSoon, usePageTitle } from "../a11y";
import type { AgentConfig, Resolution } from "../types";
import { agentType, agentVersion, listAgentTypes, listVersions, type VersionEntry } from "../playground/agents";
import { Conversation } from "../playground/Conversation";
import { parseMetadata, roomMetadata, SAMPLE_METADATA } from "../playground/metadata";
import type { Modality } from "../playground/model";
import { turnSchemas } from "../playground/schemas";
import { PlaygroundSession } from "../playground/session";
import { Setup, type ResolveState } from "../playground/Setup";
import { SummaryCard, Timeline } from "../playground/Timeline";
import { useSessionView } from "../playground/useSession";
import "./Playground.css";

export function Playground({ query }: { query: URLSearchParams }) {
  const me = useMe();
  const [agents, setAgents] = useState<AgentConfig[] | null>(null);
  const [agentsError, setAgentsError] = useState<string | null>(null);
  const [agentId, setAgentId] = useState(() => query.get("agent") ?? "");
  const [versions, setVersions] = useState<VersionEntry[] | null>(null);
  const [version, setVersion] = useState<number | null>(null);
  const [versionConfig, setVersionConfig] = useState<AgentConfig | null>(null);
  const [metadataText, setMetadataText] = useState(SAMPLE_METADATA);
  const [resolve, setResolve] = useState<ResolveState>({ status: "idle" });
  const [session, setSession] = useState<PlaygroundSession | null>(null);
  const view = useSessionView(session);
  const audioContext = useRef<AudioContext | null>(null);
  const audioSink = useRef<HTMLDivElement | null>(null);
  usePageTitle("Playground");

  const metadata = useMemo(() => parseMetadata(metadataText), [metadataText]);

  // ?agent=<id> preselects, also when the link changes while the page is open.
  const queried = query.get("agent");
  useEffect(() => {
    if (queried !== null) setAgentId(queried);
  }, [queried]);

  useEffect(() => {
    listAgentTypes()
      .then(setAgents)
      .catch((e) => setAgentsError(e instanceof ApiError && e.status === 403 ? "This key may not list agent types: only “Route me” is available." : (e as Error).message));
  }, []);

  // A type the list does not hold (archived, or a newer one) is fetched on its own.
  useEffect(() => {
    if (!agentId || !agents || agents.some((a) => a.agent_id === agentId)) return;
    agentType(agentId)
      .then((config) => setAgents((list) => (list && !list.some((a) => a.agent_id === config.agent_id) ? [...list, config] : list)))
      .catch(() => setAgentsError(`No agent type “${agentId}”.`));
  }, [agentId, agents]);

  useEffect(() => {
    setVersion(null);
    setVersions(null);
    if (!agentId) return;
    listVersions(agentId).then(setVersions).catch(() => setVersions([]));
  }, [agentId]);

  useEffect(() => {
    setVersionConfig(null);
    if (agentId && version !== null) agentVersion(agentId, version).then(setVersionConfig).catch(() => undefined);
  }, [agentId, version]);

  // A preview is for the inputs it was made with: any change marks it outdated.
  useEffect(() => {
    setResolve((r) => (r.status === "done" ? { ...r, stale: true } : r));
  }, [metadataText, agentId]);

  // The session ends with the page.
  useEffect(() => () => session?.dispose(), [session]);
  useEffect(() => () => void audioContext.current?.close(), []);

  const runResolve = useCallback(async () => {
    if (!metadata.ok) return;
    setResolve({ status: "loading" });
    try {
      const result = await post<Resolution>("routing/resolve", { metadata: roomMetadata(metadata.value, agentId) });
      setResolve({ status: "done", result, stale: false });
    } catch (e) {
      setResolve({ status: "error", message: (e as Error).message });
    }
  }, [metadata, agentId]);

  const join = useCallback(
    (modality: Modality) => {
      if (!metadata.ok) return;
      // Created in the click: browsers let audio start only from a user gesture.
      if (!audioContext.current && typeof AudioContext !== "undefined") audioContext.current = new AudioContext();
      void audioContext.current?.resume();
      const next = new PlaygroundSession(audioContext.current, () => audioSink.current);
      setSession(next);
      const pin = agentId ? { agent_id: agentId, ...(version !== null ? { version } : {}) } : null;
      void next.join(roomMetadata(metadata.value, agentId, modality), pin, modality);
      // the Join button is disabled from now on: the focus goes to the conversation, then to
      // the message box once connected (Conversation)
      focusSoon(() => document.getElementById("pg-conversation"));
    },
    [metadata, agentId, version],
  );

  const schemas = useMemo(() => turnSchemas(agents ?? []), [agents]);
  const target = targetConfig(agents, agentId, versionConfig, resolve, view.agent?.agentId ?? null);
  const busy = view.connection !== "disconnected" && !view.ended;

  return (
    <div className="pg">
      <div className="page-head pg-head">
        <div>
          <h1>Playground</h1>
          <p className="sub">Talk to any agent type by text or voice; every turn's fields, latency and the summary, live.</p>
        </div>
        {view.room && (
          <div className="pg-room muted">
            room <code>{view.room}</code> · you <code>{view.identity}</code>
            {view.pinned && <span className="chip neutral" title="The token pins the exact agent type and version">pinned</span>}
          </div>
        )}
      </div>
      <div className="pg-grid">
        <Setup
          agents={agents}
          agentsError={agentsError}
          agentId={agentId}
          onAgentId={setAgentId}
          versions={versions}
          version={version}
          onVersion={setVersion}
          metadataText={metadataText}
          onMetadataText={setMetadataText}
          metadata={metadata}
          resolve={resolve}
          onResolve={() => void runResolve()}
          target={target}
          canMint={me.can.mint_tokens}
          busy={busy}
          onJoin={join}
        />
        <Conversation view={view} session={session} audioSink={audioSink} canJoin={me.can.mint_tokens} />
        <div className="pg-side">
          <SummaryCard view={view} />
          <Timeline view={view} schemas={schemas} />
        </div>
      </div>
    </div>
  );
}

/** The type whose model the notice names: the one in the room (after a hand-off, the new
 * one), else the pick at its picked version, else the routed one of an up-to-date preview. */
function targetConfig(
  agents: AgentConfig[] | null,
  agentId: string,
  versionConfig: AgentConfig | null,
  resolve: ResolveState,
  inRoom: string | null,
): AgentConfig | null {
  const find = (id: string | null | undefined) => (id ? agents?.find((a) => a.agent_id === id) ?? null : null);
  if (inRoom && inRoom !== agentId) return find(inRoom);
  if (agentId) return versionConfig ?? find(agentId);
  if (resolve.status === "done" && !resolve.stale) return find(resolve.result.agent_id);
  return null;
}
