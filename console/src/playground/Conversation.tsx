/** The centre column: who the user is talking to and in which state, the transcript, the chat
 * input, the audio meters and the session controls. */
import { useEffect, useRef, type RefObject } from "react";
import { ChatInput } from "./ChatInput";
import { LevelMeter } from "./LevelMeter";
import type { SessionView } from "./model";
import type { PlaygroundSession } from "./session";
import { Transcript } from "./Transcript";

const AGENT_STATES: Record<string, string> = {
  initializing: "Starting",
  listening: "Listening",
  thinking: "Thinking",
  speaking: "Speaking",
};

const CONNECTION: Record<string, string> = {
  disconnected: "Not connected",
  connecting: "Connecting",
  connected: "Connected",
};

export function Conversation({ view, session, audioSink, canJoin }: {
  view: SessionView;
  session: PlaygroundSession | null;
  audioSink: RefObject<HTMLDivElement | null>;
  canJoin: boolean;
}) {
  const live = view.connection === "connected" && !view.ended;
  const voice = view.modality === "voice";
  const section = useRef<HTMLElement>(null);
  const endedNote = useRef<HTMLParagraphElement>(null);
  // Join took the focus here (its button is disabled while the session runs): once in the
  // room, typing is what comes next.
  useEffect(() => {
    const focused = document.activeElement;
    if (live && (focused === section.current || focused === document.body)) {
      section.current?.querySelector<HTMLInputElement>('[data-testid="chat-input"]')?.focus();
    }
  }, [live]);
  // "End session" goes away with the session: the focus goes to what says it ended.
  useEffect(() => {
    if (view.ended && (document.activeElement === document.body || document.activeElement === null)) endedNote.current?.focus();
  }, [view.ended]);
  return (
    <section className="card pg-conversation" aria-label="Conversation" id="pg-conversation" tabIndex={-1} ref={section}>
      <header className="pg-conv-head">
        {/* A live region: connection and agent state changes are read out as they happen,
            each state on its own (aria-atomic per state, not the whole line). */}
        <div className="pg-conv-who" aria-live="polite">
          <span className={`pg-conn ${view.connection}`} data-testid="connection-state" data-state={view.connection} aria-atomic="true">
            <span className="pg-dot" aria-hidden="true" />
            {view.ended ? "Ended" : CONNECTION[view.connection]}
          </span>
          {view.agent ? (
            <>
              <span className="pg-agent-name">
                {view.agent.agentId ?? "agent"}
                {view.agent.strategy && <span className="muted"> · routed by {view.agent.strategy}</span>}
              </span>
              {!view.ended && (
                <span className={`pg-agent-state ${view.agent.state}`} data-testid="agent-state" data-state={view.agent.state} aria-atomic="true">
                  <span className="pg-dot" aria-hidden="true" />
                  <span className="visually-hidden">Agent </span>
                  {AGENT_STATES[view.agent.state] ?? view.agent.state}
                </span>
              )}
              {view.agent.catalog && <span className="chip warn" title="The database was unreachable: served from the last-known good configs">catalog: {view.agent.catalog}</span>}
            </>
          ) : (
            live && <span className="muted">Waiting for the agent to join…</span>
          )}
        </div>
        {session && live && (
          <button className="danger" data-testid="leave" onClick={() => void session.end()} title="End the session: the agent finishes, sends its summary and leaves">
            End session
          </button>
        )}
      </header>
      {voice && session && (
        <div className="pg-voice-bar">
          <LevelMeter read={session.agentLevel} label="Agent" testId="agent-audio" containerRef={audioSink} />
          {live && (
            <div className="pg-conv-controls">
              <LevelMeter read={session.microphoneLevel} label="You" />
              <button
                data-testid="mute"
                aria-pressed={view.muted}
                className={view.muted ? "pg-muted" : ""}
                onClick={() => void session.setMuted(!view.muted)}
                title={view.muted ? "Unmute your microphone" : "Mute your microphone (typing still works)"}
              >
                {view.muted ? "Unmute" : "Mute"}
              </button>
            </div>
          )}
        </div>
      )}
      <Notices view={view} endedNote={endedNote} />
      <Transcript
        view={view}
        emptyText={canJoin ? "Pick an agent type, or let the routing decide, and join by text or voice. The conversation appears here." : "This key's role cannot join sessions: preview the routing on the left, or log in with an admin key to talk to an agent."}
      />
      <ChatInput enabled={live} onSend={(text) => session && void session.sendChat(text)} />
    </section>
  );
}

function Notices({ view, endedNote }: { view: SessionView; endedNote: RefObject<HTMLParagraphElement | null> }) {
  const waiting = view.waiting;
  return (
    <>
      {view.error && <p className="error" role="alert">{view.error}</p>}
      {waiting && !view.agent && !view.ended && (
        <p className="notice" role="status" data-testid="waiting">
          <strong>Waiting for an agent.</strong> Every worker is busy, so the room was dispatched again
          {waiting.attempt != null && <> (attempt {waiting.attempt}</>}
          {waiting.waited_s != null && <>, waited {Math.round(waiting.waited_s)} s</>}
          {waiting.attempt != null && ")"}
          {waiting.next_attempt_in_s != null && <>; next try in {Math.round(waiting.next_attempt_in_s)} s</>}.
        </p>
      )}
      {view.agent?.unavailable && <p className="error">The worker could not take this room: {view.agent.unavailable}</p>}
      {view.ended && (
        <p className="pg-ended" role="status" tabIndex={-1} ref={endedNote} data-testid="session-ended">
          {view.ended} The transcript, turns and summary stay here until you join again.
        </p>
      )}
    </>
  );
}
