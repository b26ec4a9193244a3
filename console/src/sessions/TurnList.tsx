/** The structured turns of a session: what the user said, the tools the model called before
 * answering, the filled fields (the reply itself, `system_response`, is shown as the agent's
 * words), the status, and the latency marks. */
import "./sessions.css";
import { ToolCallList } from "../components/ToolCallList";
import { TurnWaterfall, waterfallOf, waterfallScale } from "../components/TurnWaterfall";
import { toolCallsOf } from "../components/toolCalls";
import { SYSTEM_RESPONSE } from "./constants";
import { FieldValue } from "./FieldValue";
import { formatDateTime, formatMs, humanize } from "./format";
import { firstResponseMs, latencyLabel, latencyMarks, latencyOrigin } from "./latency";
import { TurnStatusChip } from "./StatusChip";
import type { SchemaField, SessionTurn } from "./types";

export function TurnList({ turns, schema }: { turns: SessionTurn[]; schema: SchemaField[] }) {
  if (turns.length === 0) return <p className="hint">No turns: the user never got an answer to a message in this session.</p>;
  // one scale for every turn of the session: a slow turn looks slow next to the others
  const scale = waterfallScale(turns);
  return (
    <ol className="turns">
      {turns.map((turn) => (
        <TurnCard key={turn.turn_index} turn={turn} schema={schema} scaleMs={scale} />
      ))}
    </ol>
  );
}

function TurnCard({ turn, schema, scaleMs }: { turn: SessionTurn; schema: SchemaField[]; scaleMs: number }) {
  const status = turn.status ?? "unknown";
  const fields = Object.entries(turn.fields ?? {}).filter(([name]) => name !== SYSTEM_RESPONSE);
  const reply = (turn.fields?.[SYSTEM_RESPONSE] as string | undefined) ?? turn.reply ?? null;
  const ordered = orderBySchema(fields, schema);
  const toolCalls = toolCallsOf(turn.tool_calls);
  return (
    <li className={`turn-card status-${status}`} data-testid="session-turn" data-turn-index={turn.turn_index} data-status={status}>
      <header>
        <span className="turn-index">Turn {turn.turn_index + 1}</span>
        <TurnStatusChip status={turn.status} />
        {turn.attempts != null && turn.attempts > 1 && <span className="hint">{turn.attempts} attempts</span>}
        {toolCalls.length > 0 && (
          <span className="chip neutral" title="Tools the model called before it replied">
            {toolCalls.length} {toolCalls.length === 1 ? "tool call" : "tool calls"}
          </span>
        )}
        <span className="hint turn-time">{formatDateTime(turn.created_at)}</span>
      </header>
      {turn.user_text && (
        <p className="turn-said">
          <span className="who user">User</span> {turn.user_text}
          {turn.user_text_truncated && (
            <span className="chip warn" title={`The message had ${turn.user_text_original_chars ?? "more"} characters; the agent read the start`}>cut</span>
          )}
        </p>
      )}
      {toolCalls.length > 0 && (
        <div className="turn-tools">
          <span className="who tools">Tools</span>
          <ToolCallList calls={toolCalls} />
        </div>
      )}
      {reply && (
        <p className="turn-said">
          <span className="who agent">Agent</span> {reply}
        </p>
      )}
      {ordered.length > 0 && (
        <dl className="props turn-fields">
          {ordered.map(([name, value]) => (
            <div key={name} className="turn-field" data-testid="turn-field" data-field={name}>
              <dt className="mono">{name}</dt>
              <dd>
                <FieldValue value={value} field={schema.find((f) => f.name === name)} />
              </dd>
            </div>
          ))}
        </dl>
      )}
      {status === "failed" && (
        <p className="turn-error" data-testid="turn-error">
          {turn.error_kind ? `${humanize(turn.error_kind)}: ` : "The fields did not validate: "}
          {turn.error ?? "no detail recorded"}
        </p>
      )}
      <TurnLatency turn={turn} />
      <TurnWaterfall stages={waterfallOf(turn.waterfall)} scaleMs={scaleMs} origin={latencyOrigin(turn.latency_from)} />
    </li>
  );
}

function TurnLatency({ turn }: { turn: SessionTurn }) {
  const marks = latencyMarks(turn);
  const first = firstResponseMs(turn);
  const fields = typeof turn.latency_ms?.fields === "number" ? turn.latency_ms.fields : null;
  const origin = latencyOrigin(turn.latency_from);
  return (
    <div
      className="turn-latency"
      data-testid="session-latency"
      data-first-ms={first ?? undefined}
      data-fields-ms={fields ?? undefined}
      data-from={turn.latency_from ?? undefined}
    >
      {marks.length === 0 ? (
        <span className="hint">no latency recorded for this turn</span>
      ) : (
        marks.map(([mark, ms]) => (
          <span key={mark} className="latency-mark" data-mark={mark} title={`${origin ?? "From the user's message or end of speech"} to the ${latencyLabel(mark)}`}>
            <span className="hint">{latencyLabel(mark)}</span> <strong>{formatMs(ms)}</strong>
          </span>
        ))
      )}
      {marks.length > 0 && origin && <span className="hint latency-origin">{origin}</span>}
    </div>
  );
}

/** Schema order (what the author wrote), then fields the schema no longer lists. */
function orderBySchema(fields: [string, unknown][], schema: SchemaField[]): [string, unknown][] {
  const position = (name: string) => {
    const at = schema.findIndex((f) => f.name === name);
    return at === -1 ? schema.length : at;
  };
  return [...fields].sort(([a], [b]) => position(a) - position(b));
}
