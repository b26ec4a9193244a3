/** Which model an agent type's replies come from, and, for the embedded one, plainly that its
 * replies prove the wiring and mean nothing. */
import type { AgentConfig } from "../types";
import { describeModel } from "./agents";

export function ModelNotice({ config, pending }: { config: AgentConfig | null; pending: string | null }) {
  if (!config) {
    return (
      <div className="pg-model" data-testid="model-notice" data-provider="">
        <span className="muted">{pending ?? "Preview the routing to see which agent type, and model, you would get."}</span>
      </div>
    );
  }
  const model = describeModel(config.llm);
  if (!model) return null;
  return (
    <div className={`pg-model${model.embedded ? " embedded" : ""}`} data-testid="model-notice" data-provider={model.provider} data-model={model.model}>
      <div className="pg-model-line">
        <span className="muted">Replies from</span> <span className="chip neutral">{model.provider}</span>{" "}
        <code>{model.model}</code>
        {model.baseUrl && <span className="muted"> at <code>{model.baseUrl}</code></span>}
        {model.fallbacks.length > 0 && <span className="muted"> · then {model.fallbacks.join(", ")}</span>}
      </div>
      {model.embedded && (
        <p className="pg-model-warning">
          <strong>Wiring check, not quality.</strong> <code>local</code> is the operator's local endpoint: unless it
          was pointed elsewhere, that is the embedded SmolLM2-135M, a tiny model whose replies and fields prove the
          wiring and are <strong>not meaningful</strong>. To hear a real conversation, run any OpenAI-compatible server
          (e.g. Ollama) and set <code>LOCAL_LLM_URL</code> + <code>LOCAL_LLM_MODEL</code>: see README, "Use your own
          model".
        </p>
      )}
    </div>
  );
}
