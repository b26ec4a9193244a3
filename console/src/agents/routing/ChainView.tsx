/** The strategy chain in words: one card per strategy, in order, saying what it looks at and
 * what it proposes; with the preview's outcome on each card it consulted. */
import type { ReactNode } from "react";
import { href } from "../../router";
import type { Json } from "../definition";
import { OUTCOME_CHIPS, OUTCOME_LABELS, type ChainEntry, type TrailStep } from "./types";

type Params = { [key: string]: Json };

const SUMMARIES: Record<string, string> = {
  explicit: "The room's metadata names the type: agent_id.",
  purpose: "The room's purpose picks the type.",
  user_attributes: "Rules on user_details, first match wins.",
  ab_split: "Splits users by a stable hash of user_id.",
  time_window: "Business hours: the window the current time falls in.",
  default: "Always proposes the same type. Keep it last.",
  webhook: "Asks your service which type to run (a POST of the routing context); its answer may add variables for the type's placeholders.",
};

function hostOf(url: Json | undefined): string {
  if (typeof url !== "string") return "?";
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function Agent({ id }: { id: Json | undefined }) {
  if (typeof id !== "string") return <span className="muted">—</span>;
  return (
    <a className="mono agent-ref" href={href("agents", id)}>
      {id}
    </a>
  );
}

/** `{"tier": "premium", "age": {"gte": 18}}` -> `tier = premium and age ≥ 18`. */
function describeWhen(when: Json | undefined): string {
  if (!when || typeof when !== "object" || Array.isArray(when)) return "?";
  const symbols: Record<string, string> = { eq: "=", ne: "≠", gt: ">", gte: "≥", lt: "<", lte: "≤", in: "in" };
  return Object.entries(when)
    .flatMap(([path, spec]) =>
      spec !== null && typeof spec === "object" && !Array.isArray(spec)
        ? Object.entries(spec).map(([op, value]) => `${path} ${symbols[op] ?? op} ${JSON.stringify(value)}`)
        : [`${path} = ${JSON.stringify(spec)}`],
    )
    .join(" and ");
}

function ParamsView({ entry }: { entry: ChainEntry }) {
  const params: Params = entry.params ?? {};
  switch (entry.strategy) {
    case "explicit": {
      const allowed = params.allowed_agent_ids;
      return Array.isArray(allowed) ? (
        <Row label="may pick">
          <span className="chips">{allowed.length ? allowed.map((id) => <Agent key={String(id)} id={id} />) : <span className="muted">nothing</span>}</span>
        </Row>
      ) : (
        <Row label="may pick">any agent type</Row>
      );
    }
    case "purpose": {
      const agents = (params.agents ?? {}) as Params;
      return (
        <ul className="mapping">
          {Object.entries(agents).map(([purpose, id]) => (
            <li key={purpose}>
              <span className="chip">{purpose}</span> → <Agent id={id} />
            </li>
          ))}
          {!Object.keys(agents).length && <li className="muted">no purposes mapped</li>}
        </ul>
      );
    }
    case "user_attributes": {
      const rules = Array.isArray(params.rules) ? (params.rules as Params[]) : [];
      return (
        <ol className="mapping">
          {rules.map((rule, i) => (
            <li key={i}>
              <span className="mono">{describeWhen(rule.when)}</span> → <Agent id={rule.agent_id} />
            </li>
          ))}
          {!rules.length && <li className="muted">no rules</li>}
        </ol>
      );
    }
    case "ab_split": {
      const variants = Array.isArray(params.variants) ? (params.variants as Params[]) : [];
      const total = variants.reduce((sum, v) => sum + (typeof v.weight === "number" ? v.weight : 1), 0);
      return (
        <ul className="mapping">
          {variants.map((v, i) => {
            const share = total ? ((typeof v.weight === "number" ? v.weight : 1) / total) * 100 : 0;
            return (
              <li key={i} className="variant">
                <Agent id={v.agent_id} /> <span className="muted">{share.toFixed(0)}%</span>
                <span className="bar" style={{ width: `${share}%` }} />
              </li>
            );
          })}
          {!variants.length && <li className="muted">no variants</li>}
        </ul>
      );
    }
    case "time_window": {
      const windows = Array.isArray(params.windows) ? (params.windows as Params[]) : [];
      return (
        <ul className="mapping">
          {windows.map((w, i) => (
            <li key={i}>
              <span className="mono">
                {Array.isArray(w.days) ? w.days.join(",") : "every day"} {String(w.start ?? "?")}–{String(w.end ?? "?")} {String(w.timezone ?? "UTC")}
              </span>{" "}
              → <Agent id={w.agent_id} />
            </li>
          ))}
          {!windows.length && <li className="muted">no windows</li>}
          {params.otherwise_agent_id != null && (
            <li>
              otherwise → <Agent id={params.otherwise_agent_id} />
            </li>
          )}
        </ul>
      );
    }
    case "default":
      return (
        <Row label="proposes">
          <Agent id={params.agent_id} />
        </Row>
      );
    case "webhook": {
      const headers = params.headers && typeof params.headers === "object" && !Array.isArray(params.headers) ? Object.keys(params.headers) : [];
      return (
        <>
          <Row label="asks">
            <span className="mono" data-testid="webhook-host">{hostOf(params.url)}</span>
          </Row>
          <Row label="waits at most">{typeof params.timeout_s === "number" ? params.timeout_s : 1.5} s, then the next strategy</Row>
          <Row label="sends">
            routing context{params.include_user_details === true ? " with user_details" : ", without user_details"}
            {headers.length > 0 && <span className="muted"> · headers {headers.join(", ")}</span>}
          </Row>
        </>
      );
    }
    default:
      return <pre className="params">{JSON.stringify(params, null, 2)}</pre>;
  }
}

function Row({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="param-row">
      <span className="muted">{label}</span> {children}
    </div>
  );
}

/** Which trail step belongs to which chain entry: the router consults enabled entries in order. */
function stepsByEntry(chain: ChainEntry[], trail: TrailStep[] | null): (TrailStep | undefined)[] {
  if (!trail) return chain.map(() => undefined);
  let next = 0;
  return chain.map((entry) => {
    if (entry.enabled === false) return undefined;
    const step = trail[next];
    if (step && step.strategy === entry.strategy) {
      next += 1;
      return step;
    }
    return undefined;
  });
}

export function ChainView({ chain, trail }: { chain: ChainEntry[]; trail: TrailStep[] | null }) {
  const steps = stepsByEntry(chain, trail);
  return (
    <ol className="chain" data-testid="rules-chain">
      {chain.map((entry, i) => {
        const step = steps[i];
        const disabled = entry.enabled === false;
        return (
          <li
            key={i}
            className={`card chain-card ${disabled ? "disabled" : ""} ${step?.outcome === "chosen" ? "chosen" : ""}`}
            data-testid="chain-entry"
            data-strategy={entry.strategy}
            data-enabled={!disabled}
          >
            <div className="chain-head">
              <span className="chain-num">{i + 1}</span>
              <strong className="mono">{entry.strategy}</strong>
              {disabled && <span className="chip neutral">disabled</span>}
              {step && <span className={OUTCOME_CHIPS[step.outcome]}>{OUTCOME_LABELS[step.outcome]}</span>}
            </div>
            <p className="hint">{SUMMARIES[entry.strategy] ?? "A registered strategy (plugin)."}</p>
            <ParamsView entry={entry} />
            {step && <p className="step-reason">{step.reason}</p>}
          </li>
        );
      })}
    </ol>
  );
}
