/** Which model an agent type's replies come from, and, for the embedded one, plainly that its
 * replies prove the wiring and mean nothing. A `local` type runs on whatever the operator set
 * (LOCAL_LLM_URL + LOCAL_LLM_MODEL): `GET /api/v1/models/local` says which. */
import { useEffect, useState } from "react";
import { get } from "../api";
import type { AgentConfig } from "../types";
import { describeModel } from "./agents";

interface LocalModel {
  profile: string;
  url: string;
  model: string | null;
  embedded: boolean;
}

/** Asked once per page load: it changes only when the operator restarts with other settings. */
let localModel: Promise<LocalModel | null> | null = null;
function fetchLocalModel(): Promise<LocalModel | null> {
  localModel ??= get<LocalModel>("models/local").catch(() => null);
  return localModel;
}

function useLocalModel(): LocalModel | null {
  const [value, setValue] = useState<LocalModel | null>(null);
  useEffect(() => {
    let live = true;
    void fetchLocalModel().then((v) => live && setValue(v));
    return () => {
      live = false;
    };
  }, []);
  return value;
}

export function ModelNotice({ config, pending }: { config: AgentConfig | null; pending: string | null }) {
  const local = useLocalModel();
  if (!config) {
    return (
      <div className="pg-model" data-testid="model-notice" data-provider="">
        <span className="muted">{pending ?? "Preview the routing to see which agent type, and model, you would get."}</span>
      </div>
    );
  }
  const described = describeModel(config.llm);
  if (!described) return null;
  const model = { ...described };
  // The operator's endpoint decides what a `local` type without its own base_url runs on.
  if (model.provider === "local" && !model.baseUrl && local) {
    model.embedded = local.embedded;
    if (local.model) model.model = local.model;
    if (!local.embedded) model.baseUrl = local.url;
  }
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
          <strong>Wiring check, not quality.</strong> {local ? (
            <>
              <code>local</code> runs on the embedded SmolLM2-135M here, a tiny model
            </>
          ) : (
            <>
              <code>local</code> is the operator's local endpoint, by default the embedded SmolLM2-135M, a tiny model
            </>
          )} whose replies and fields prove the
          wiring and are <strong>not meaningful</strong>. To hear a real conversation, run any OpenAI-compatible server
          (e.g. Ollama) and set <code>LOCAL_LLM_URL</code> + <code>LOCAL_LLM_MODEL</code>: see README, "Use your own
          model".
        </p>
      )}
    </div>
  );
}
