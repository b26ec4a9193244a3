/** One `agent-turn`: the tool calls that led to the reply, its structured fields, whether it
 * failed, and how long the user waited. */
import { ToolCallList } from "../components/ToolCallList";
import { TurnWaterfall, waterfallOf } from "../components/TurnWaterfall";
import { latencyOrigin } from "../sessions/latency";
import { toolCallsOf } from "../components/toolCalls";
import { SYSTEM_RESPONSE_FIELD, type TurnSchemas } from "./schemas";
import { FieldValue } from "./FieldValue";
import { SOURCE_EXPLAINED, type TurnLatency } from "./latency";
import type { TurnPayload } from "./model";

const ERROR_KINDS: Record<string, string> = {
  llm_unavailable: "no model reachable",
  llm_timeout: "the model timed out",
  llm_error: "the model answered with an error",
  empty_reply: "the model's reply was empty",
};

export function TurnCard({ turn, latency, schemas, voice, showAgent, waterfallScaleMs }: {
  turn: TurnPayload;
  latency: TurnLatency | null;
  schemas: TurnSchemas;
  voice: boolean;
  /** After a hand-off the turns come from more than one type: each says which. */
  showAgent: boolean;
  /** The time the waterfall's width stands for: the same for every turn of the session. */
  waterfallScaleMs?: number;
}) {
  const failed = turn.status === "failed";
  const schema = schemas(turn.agent_id);
  const names = orderedFieldNames(turn.fields ?? {}, schema.map((f) => f.name));
  const reply = turn.fields?.[SYSTEM_RESPONSE_FIELD];
  const toolCalls = toolCallsOf(turn.tool_calls);
  return (
    <article className={`pg-turn${failed ? " failed" : ""}`} data-testid="turn" data-turn-index={turn.turn_index} data-status={failed ? "failed" : "ok"}>
      <header className="pg-turn-head">
        <span className="pg-turn-title">Turn {turn.turn_index + 1}</span>
        {failed ? (
          <span className="chip bad" title={turn.error_kind ? ERROR_KINDS[turn.error_kind] ?? turn.error_kind : undefined}>
            failed{turn.error_kind ? ` · ${turn.error_kind}` : ""}
          </span>
        ) : (
          <span className="chip ok">ok</span>
        )}
        {turn.user_text_truncated && <span className="chip warn" title="Only the start of the message was read (max_user_message_chars)">message cut</span>}
        {toolCalls.length > 0 && (
          <span className="chip neutral" title="Tools the model called before it replied">
            {toolCalls.length} {toolCalls.length === 1 ? "tool call" : "tool calls"}
          </span>
        )}
        {showAgent && turn.agent_id && <span className="pg-turn-agent muted">{turn.agent_id}</span>}
      </header>
      {failed && (
        <p className="pg-turn-failure">
          {turn.error_kind === "llm_unavailable" || turn.error_kind === "llm_timeout" || turn.error_kind === "llm_error"
            ? `No answer from the model (${ERROR_KINDS[turn.error_kind]}): the user was given the type's llm_unavailable message.`
            : turn.error_kind === "empty_reply"
              ? "The model answered with nothing but whitespace: the user saw an empty reply."
              : "The fields could not be filled for this reply (after one retry)."}
        </p>
      )}
      <ToolCallList calls={toolCalls} />
      {names.length > 0 && (
        <dl className="pg-fields">
          {names.map((name) => {
            const field = schema.find((f) => f.name === name);
            return (
              <div className="pg-field" key={name} data-testid="turn-field" data-field={name} title={field?.description}>
                <dt>{name}</dt>
                <dd><FieldValue value={turn.fields[name]} field={field} /></dd>
              </div>
            );
          })}
        </dl>
      )}
      {typeof reply === "string" && (
        <details className="pg-reply" data-testid="turn-field" data-field={SYSTEM_RESPONSE_FIELD}>
          <summary>system_response <span className="muted">(the reply, as in the transcript)</span></summary>
          <p>{reply}</p>
        </details>
      )}
      <LatencyRow latency={latency} server={turn.latency_ms} serverFrom={turn.latency_from} voice={voice} />
      <TurnWaterfall stages={waterfallOf(turn.waterfall)} scaleMs={waterfallScaleMs} origin={latencyOrigin(turn.latency_from)} compact />
    </article>
  );
}

/** Schema order first (how the type's author listed them), then anything extra; the reply
 * itself is shown apart, collapsed, since the transcript already has it. */
function orderedFieldNames(fields: Record<string, unknown>, schemaOrder: string[]): string[] {
  const present = Object.keys(fields).filter((n) => n !== SYSTEM_RESPONSE_FIELD);
  const known = schemaOrder.filter((n) => present.includes(n));
  return [...known, ...present.filter((n) => !known.includes(n))];
}

const ms = (value: number | null) => (value === null ? "—" : value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(2)} s`);

function LatencyRow({ latency, server, serverFrom, voice }: {
  latency: TurnLatency | null;
  server?: Record<string, unknown>;
  serverFrom?: string;
  voice: boolean;
}) {
  const serverMarks = Object.entries(server ?? {}).filter(([, v]) => typeof v === "number") as [string, number][];
  const firstLabel = voice && latency?.firstAudioMs != null ? "first audio" : "first text";
  const explained = latency
    ? `Measured in this browser ${SOURCE_EXPLAINED[latency.source]}: to the first agent ${voice ? "audio above the level threshold (or text, if no audio was measured)" : "text"}, and to the turn's fields arriving (agent-turn).`
    : "No latency: this turn could not be matched to a message sent from this page.";
  return (
    <div
      className="pg-latency"
      data-testid="turn-latency"
      data-first-ms={latency?.firstMs ?? undefined}
      data-fields-ms={latency?.fieldsMs ?? undefined}
      title={explained}
    >
      <span className="pg-latency-item">
        <span className="muted">{firstLabel}</span> <strong>{ms(latency?.firstMs ?? null)}</strong>
      </span>
      {voice && latency?.firstAudioMs != null && latency.firstTextMs != null && (
        <span className="pg-latency-item">
          <span className="muted">text</span> {ms(latency.firstTextMs)}
        </span>
      )}
      <span className="pg-latency-item">
        <span className="muted">fields</span> <strong>{ms(latency?.fieldsMs ?? null)}</strong>
      </span>
      {serverMarks.length > 0 && (
        <span
          className="pg-latency-item server"
          title={`Measured by the worker (agent-turn latency_ms) from ${serverFrom?.replace(/_/g, " ") ?? "the user's message"}; leaves out the network between this browser and LiveKit`}
        >
          <span className="muted">server</span>{" "}
          {serverMarks.map(([name, value]) => `${name.replace(/_ms$/, "")} ${ms(Math.round(value))}`).join(" · ")}
        </span>
      )}
    </div>
  );
}
