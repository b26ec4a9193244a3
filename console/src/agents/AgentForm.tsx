/** The agent type as a form, one card per concern. Everything the form does not show (intents,
 * VAD, fallback models, provider options) is kept in the draft as it is and edited in JSON mode. */
import type { ReactNode } from "react";
import { getAt, type Json } from "./definition";
import { CheckboxField, ListField, NumberField, SelectField, TextField, useDraft } from "./formControls";
import { FieldErrors } from "./problems";
import { ToolsEditor } from "./ToolsEditor";
import { TurnFieldsTable } from "./TurnFieldsTable";

/** What a speech model starts as when it is switched on: the local dev stack's models. */
const SPEECH_DEFAULTS: Record<"stt" | "tts", Json> = {
  stt: { provider: "local", model: "tiny.en", language: "en" },
  tts: { provider: "local", model: "espeak-ng", voice: "en-us", language: "en" },
};

export function AgentForm() {
  const { draft } = useDraft();
  return (
    <div className="agent-form">
      <Section title="Identity" sub="How people and the routing find this agent type.">
        <div className="grid two">
          <TextField path="name" label="Name" />
          <ReadOnlyValue label="Agent id" value={<code>{String(draft.agent_id ?? "")}</code>} hint="Fixed: rooms, rules and sessions refer to it." />
        </div>
        <TextField path="description" label="Description" multiline rows={2} />
        <div className="grid two">
          <ListField path="purposes" label="Purposes" placeholder="support, billing" hint="Comma-separated; the purpose strategy maps a room's purpose to a type." />
          <ListField path="tags" label="Tags" placeholder="built-in, support" hint="Comma-separated, for filtering the list." />
        </div>
        <Modalities />
        <CheckboxField
          path="release_gate"
          label="Release gate: a new version goes live only after a passing eval run"
          hint="Then a save, a rollback or a resume of this type needs a passing run of its suite on that version (Evals tab), or an admin's override with a reason; a save without one is filed as a candidate. Switching the gate off is gated too."
        />
      </Section>

      <Section title="Conversation" sub="What the agent says first, and how it behaves.">
        <TextField path="greeting" label="Greeting" whenEmpty="null" multiline rows={2} hint="Said (or typed) when a session starts; empty for none." />
        <TextField path="instructions" label="Instructions" multiline rows={14} hint="The system prompt. At least 20 characters." />
      </Section>

      <Section title="Language model" sub="Any OpenAI-compatible server works through base_url.">
        <div className="grid three">
          <TextField path="llm.provider" label="Provider" placeholder="local" hint="local, openai, or a registered provider" />
          <TextField path="llm.model" label="Model" mono />
          <NumberField path="llm.temperature" label="Temperature" step={0.1} min={0} max={2} placeholder="0.7" />
        </div>
        <div className="grid three">
          <TextField path="llm.base_url" label="Base URL" whenEmpty="null" mono placeholder="http://127.0.0.1:11434/v1" />
          <TextField path="llm.api_key_env" label="API key env var" whenEmpty="null" mono placeholder="OPENAI_API_KEY" hint="The name of an environment variable, never the key itself." />
          <NumberField path="llm.max_tokens" label="Max tokens" integer min={1} whenEmpty="null" placeholder="model default" />
        </div>
        <JsonOnlyNote items={[["fallback models", getAt(draft, "llm.fallback")], ["provider options", getAt(draft, "llm.options")]]} />
      </Section>

      <Section title="Voice" sub="Speech-to-text and text-to-speech, needed for the voice modality.">
        <div className="grid two">
          <SpeechModel kind="stt" title="Speech-to-text" />
          <SpeechModel kind="tts" title="Text-to-speech" />
        </div>
      </Section>

      <Section title="Turn schema" sub="The values the agent fills on every turn, sent to the room and stored with the turn.">
        <div className="grid two">
          <TextField path="turn_schema.schema_id" label="Schema id" mono />
          <SelectField
            path="turn_schema.fill"
            label="Filled"
            options={[
              { value: "with_reply", label: "with the reply (one model call)" },
              { value: "after_reply", label: "after the reply (a second call)" },
            ]}
          />
        </div>
        <TurnFieldsTable />
      </Section>

      <Section title="Tools" sub="What the agent can do besides talking: call an API, hand over to another type, escalate, end the session. Checked on save: hosts against the egress policy, targets that exist.">
        <ToolsEditor />
      </Section>

      <div className="grid two">
        <Section title="Memory and summary">
          <CheckboxField path="memory.enabled" label="Remember a user across sessions" />
          <NumberField path="memory.max_past_turns" label="Past turns recalled" integer min={1} max={200} placeholder="20" />
          <CheckboxField path="summary.enabled" label="Write a summary when the session ends" />
        </Section>
        <Section title="When the model does not answer">
          <NumberField path="llm_unavailable.after_s" label="Give up after (s)" min={1} max={120} placeholder="8" />
          <TextField path="llm_unavailable.message" label="Then tell the user" multiline rows={3} whenEmpty="remove" />
        </Section>
      </div>

      <Section title="Limits" sub="Bounds on context, input and session size.">
        <div className="grid three">
          <NumberField path="max_context_messages" label="Context messages" integer min={2} max={1000} placeholder="40" />
          <NumberField path="max_context_chars" label="Context characters" integer min={1000} placeholder="24000" />
          <NumberField path="max_user_message_chars" label="User message characters" integer min={100} placeholder="4000" />
          <NumberField path="max_transcript_chars" label="Transcript characters" integer min={1000} placeholder="200000" />
          <NumberField path="idle_timeout_s" label="Idle timeout (s)" min={5} placeholder="300" />
          <NumberField path="max_concurrent_sessions" label="Concurrent sessions" integer min={1} whenEmpty="null" placeholder="unlimited" />
        </div>
      </Section>

      <JsonOnlyNote items={[["intents", getAt(draft, "intents")], ["voice activity detection", getAt(draft, "vad")]]} />
    </div>
  );
}

function Section({ title, sub, children }: { title: string; sub?: string; children: ReactNode }) {
  return (
    <section className="card form-section">
      <header>
        <h2>{title}</h2>
        {sub && <p className="hint">{sub}</p>}
      </header>
      {children}
    </section>
  );
}

function ReadOnlyValue({ label, value, hint }: { label: string; value: ReactNode; hint?: string }) {
  return (
    <div className="field">
      <span>{label}</span>
      <div className="static-value">{value}</div>
      {hint && <p className="hint">{hint}</p>}
    </div>
  );
}

function Modalities() {
  const { draft, update, readOnly } = useDraft();
  const chosen = (getAt(draft, "modalities") as string[] | undefined) ?? ["voice", "text"];
  const toggle = (modality: string, on: boolean) =>
    update("modalities", on ? ["voice", "text"].filter((m) => m === modality || chosen.includes(m)) : chosen.filter((m) => m !== modality));
  return (
    <div className="field" data-testid="field-modalities">
      <span>Modalities</span>
      <div className="inline-checks">
        {["voice", "text"].map((m) => (
          <label key={m} className="check">
            <input type="checkbox" id={`field-modalities-${m}`} data-testid={`field-modalities-${m}`} checked={chosen.includes(m)} disabled={readOnly} onChange={(e) => toggle(m, e.target.checked)} />
            <span>{m}</span>
          </label>
        ))}
      </div>
      <FieldErrors path="modalities" nested />
    </div>
  );
}

function SpeechModel({ kind, title }: { kind: "stt" | "tts"; title: string }) {
  const { draft, update, readOnly } = useDraft();
  const on = getAt(draft, kind) != null;
  return (
    <div className="speech-model">
      <label className="check section-toggle">
        <input type="checkbox" id={`field-${kind}`} data-testid={`field-${kind}`} checked={on} disabled={readOnly} onChange={(e) => update(kind, e.target.checked ? SPEECH_DEFAULTS[kind] : null)} />
        <strong>{title}</strong>
      </label>
      <FieldErrors path={kind} />
      {on ? (
        <>
          <div className="grid two">
            <TextField path={`${kind}.provider`} label="Provider" placeholder="local" />
            <TextField path={`${kind}.model`} label="Model" mono />
          </div>
          <div className="grid two">
            {kind === "tts" && <TextField path="tts.voice" label="Voice" whenEmpty="null" placeholder="en-us" />}
            <TextField path={`${kind}.language`} label="Language" whenEmpty="remove" placeholder="en" />
            {kind === "tts" && <NumberField path="tts.speed" label="Speed" step={0.1} min={0.25} max={4} placeholder="1.0" />}
          </div>
          <div className="grid two">
            <TextField path={`${kind}.base_url`} label="Base URL" whenEmpty="null" mono />
            <TextField path={`${kind}.api_key_env`} label="API key env var" whenEmpty="null" mono placeholder="DEEPGRAM_API_KEY" />
          </div>
        </>
      ) : (
        <p className="hint">Off: this type cannot take voice sessions.</p>
      )}
    </div>
  );
}

/** Says which parts of the draft only JSON mode edits, and that they are kept. */
function JsonOnlyNote({ items }: { items: [string, Json | undefined][] }) {
  const present = items.filter(([, value]) => value != null && !(Array.isArray(value) && !value.length) && !(typeof value === "object" && !Array.isArray(value) && !Object.keys(value).length));
  if (!present.length) return null;
  return (
    <p className="hint json-only">
      This type also has {present.map(([name]) => name).join(" and ")}: kept as they are; edit them in JSON mode.
    </p>
  );
}
