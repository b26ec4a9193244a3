/** The tool calls that led to a reply, in the order the model made them: what it called with
 * which arguments, whether it worked, how long it took and what the model got back. Shared by
 * the playground's live turns and the session page's recorded ones. */
import "./toolCalls.css";
import { compactJson, type ToolCall } from "./toolCalls";

export function ToolCallList({ calls }: { calls: ToolCall[] }) {
  if (calls.length === 0) return null;
  return (
    <ol className="tool-calls" aria-label="Tool calls">
      {calls.map((call, i) => (
        <ToolCallRow key={i} call={call} />
      ))}
    </ol>
  );
}

function ToolCallRow({ call }: { call: ToolCall }) {
  const args = call.arguments ?? {};
  const hasArgs = typeof args !== "object" || Object.keys(args).length > 0;
  return (
    <li className={`tool-call ${call.ok ? "ok" : "failed"}`} data-testid="tool-call" data-tool={call.name} data-ok={call.ok ? "true" : "false"}>
      <div className="tool-call-head">
        <span className="tool-call-icon" aria-hidden="true">ƒ</span>
        <code className="tool-call-name">{call.name}</code>
        {call.ok ? (
          <span className="chip ok">ok</span>
        ) : (
          <span className="chip bad" title={call.error ?? undefined}>{failureKind(call.error)}</span>
        )}
        <span className="tool-call-duration" title="How long the call took, as the worker measured it">{formatDuration(call.duration_ms)}</span>
      </div>
      {hasArgs ? (
        <details className="tool-call-args">
          <summary title="Show the arguments in full">
            <code>{compactJson(args)}</code>
          </summary>
          <pre>{JSON.stringify(args, null, 2)}</pre>
        </details>
      ) : (
        <p className="tool-call-args hint">no arguments</p>
      )}
      {!call.ok && call.error && <p className="tool-call-error">{call.error}</p>}
      {call.result_preview && (
        <p className="tool-call-result" title="What went back to the model (the first 200 characters)">
          <span className="muted" aria-hidden="true">→ </span>
          <code>{call.result_preview}</code>
        </p>
      )}
    </li>
  );
}

/** The chip names the kind of failure; the message itself is on the line below. */
function failureKind(error: string | null | undefined): string {
  const text = (error ?? "").toLowerCase();
  if (text.startsWith("timeout")) return "timeout";
  if (text.includes("refused")) return "refused";
  return "error";
}

function formatDuration(ms: number | null | undefined): string {
  if (typeof ms !== "number" || Number.isNaN(ms)) return "—";
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}
