/** A stale save (412): who saved what since the draft's version, and the two ways on: take
 * theirs (reload, discarding the draft) or compare first. Never an automatic overwrite. */
import { useState } from "react";
import { definitionOf, diffableJson, type Definition } from "./definition";
import { DiffView } from "./DiffView";
import { exactTime, ago } from "./format";
import { describeEvent } from "./history";
import type { Conflict, Loaded } from "./useAgentEditor";

export function ConflictPanel({
  conflict,
  draft,
  onReload,
  onKeepDraft,
}: {
  conflict: Conflict;
  draft: Definition;
  onReload: () => void;
  onKeepDraft: (current: Loaded) => void;
}) {
  const [comparing, setComparing] = useState(false);
  const current = conflict.current.config;
  const latest = conflict.changes[conflict.changes.length - 1];
  return (
    <section className="conflict" role="alert" data-testid="conflict" data-current-version={current.version}>
      <h3>Someone saved this agent type while you were editing</h3>
      <p>
        Your draft started from <strong>v{conflict.base}</strong>; the current version is <strong>v{current.version}</strong>
        {latest ? (
          <>
            , {describeEvent(latest)} by <strong data-testid="conflict-actor">{latest.actor}</strong>{" "}
            <span title={exactTime(latest.at)}>{ago(latest.at)}</span>
          </>
        ) : null}
        . Nothing of yours was saved.
      </p>
      {conflict.changes.length > 1 && (
        <ul className="conflict-changes">
          {conflict.changes.map((e) => (
            <li key={e.id}>
              v{e.version}: {describeEvent(e)} by <strong>{e.actor}</strong> <span className="muted" title={exactTime(e.at)}>{ago(e.at)}</span>
            </li>
          ))}
        </ul>
      )}
      <div className="actions">
        <button type="button" className="primary" onClick={onReload} data-testid="conflict-reload">
          Discard my draft, load v{current.version}
        </button>
        <button type="button" onClick={() => setComparing((c) => !c)} data-testid="conflict-compare" aria-pressed={comparing}>
          {comparing ? "Hide the comparison" : `Compare my draft with v${current.version}`}
        </button>
        <button type="button" className="ghost" onClick={() => onKeepDraft(conflict.current)} data-testid="conflict-keep" title="Your next save replaces their version">
          Keep my draft on top of v{current.version}
        </button>
      </div>
      {comparing && (
        <DiffView before={diffableJson(definitionOf(current))} after={diffableJson(draft)} beforeLabel={`v${current.version} (saved)`} afterLabel="your draft" />
      )}
    </section>
  );
}
