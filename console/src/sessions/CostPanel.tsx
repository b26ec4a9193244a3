/** What the session cost (the record's `cost`, written by the worker when the session ends):
 * tokens in and out and requests per model, seconds of audio transcribed, characters spoken,
 * tool calls. A table, so each number is read with its model and its unit. */
import "./sessions.css";
import { formatCount } from "./format";
import type { SessionDetail } from "./types";

export function CostPanel({ session }: { session: SessionDetail }) {
  const cost = session.cost;
  if (!cost) {
    return (
      <p className="hint" data-testid="session-cost" data-state="none">
        {session.status === "active" ? "The cost is counted when the session ends: this one is still active." : "No cost was recorded for this session (sessions before the worker counted it have none)."}
      </p>
    );
  }
  const models = cost.llm ?? [];
  return (
    <div data-testid="session-cost" data-state="shown">
      {models.length > 0 ? (
        <table className="list cost-table">
          <caption className="visually-hidden">Language model use by model</caption>
          <thead>
            <tr>
              <th scope="col">Model</th>
              <th scope="col" className="num">requests</th>
              <th scope="col" className="num">tokens in</th>
              <th scope="col" className="num">tokens out</th>
            </tr>
          </thead>
          <tbody>
            {models.map((m) => (
              <tr key={m.model} data-testid="cost-model" data-model={m.model} data-requests={m.requests} data-input-tokens={m.input_tokens} data-output-tokens={m.output_tokens}>
                <th scope="row" className="mono">{m.model}</th>
                <td className="num">{formatCount(m.requests)}</td>
                <td className="num">{formatCount(m.input_tokens)}</td>
                <td className="num">{formatCount(m.output_tokens)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : (
        <p className="hint">No model requests.</p>
      )}
      <dl className="props cost-counters">
        <dt>Speech transcribed</dt>
        <dd data-testid="cost-stt" data-value={cost.stt_audio_s ?? 0}>{formatSeconds(cost.stt_audio_s)}</dd>
        <dt>Speech synthesized</dt>
        <dd data-testid="cost-tts" data-value={cost.tts_characters ?? 0}>{formatCount(cost.tts_characters ?? 0)} characters</dd>
        <dt>Tool calls</dt>
        <dd data-testid="cost-tools" data-value={cost.tool_calls ?? 0}>{formatCount(cost.tool_calls ?? 0)}</dd>
      </dl>
    </div>
  );
}

const formatSeconds = (seconds: number | undefined) => `${Math.round((seconds ?? 0) * 10) / 10} s of audio`;
