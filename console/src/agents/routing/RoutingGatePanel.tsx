/** The release gate refusing a routing change (409): each agent type the change would send more
 * traffic, its version, the scenarios its newest run failed and a link to that run; a key that
 * may write can send the same rules again with an override reason (confirmed in the dialog). */
import { useRef, useState } from "react";
import { OverrideDialog, runLink } from "../GatePanels";
import type { RoutingGateAgent } from "../../evals/api";
import { href } from "../../router";
import { useMe } from "../../session";

export function RoutingGatePanel({
  agents,
  detail,
  onOverride,
}: {
  agents: RoutingGateAgent[];
  detail: string;
  onOverride: (reason: string) => void;
}) {
  const me = useMe();
  const [overriding, setOverriding] = useState(false);
  const opener = useRef<HTMLButtonElement>(null);
  return (
    <>
      <div className="error rules-gate" role="alert" data-testid="rules-gate-refused">
        <p>
          <strong>The release gate refused these rules</strong>: they send more traffic to a gated agent type whose current version
          has no passing run of its suite. Nothing was saved.
        </p>
        {agents.length === 0 && <p>{detail}</p>}
        <ul>
          {agents.map((agent) => (
            <li key={agent.agent_id} data-testid="rules-gate-agent" data-agent-id={agent.agent_id}>
              <a href={href("agents", agent.agent_id, "evals")}>{agent.agent_id}</a>
              {agent.version != null && ` v${agent.version}`}:{" "}
              {agent.failing_scenarios.length ? `failing ${agent.failing_scenarios.join(", ")}` : "no run yet"}
              {agent.run_id && (
                <>
                  {" "}
                  (<a href={runLink(agent.agent_id, agent.run_id)}>the run</a>)
                </>
              )}
            </li>
          ))}
        </ul>
        {me.can.write && (
          <div className="actions">
            <button type="button" className="danger" ref={opener} onClick={() => setOverriding(true)} data-testid="gate-override">
              Override…
            </button>
          </div>
        )}
      </div>
      {overriding && (
        <OverrideDialog
          what="save these rules"
          onCancel={() => {
            setOverriding(false);
            opener.current?.focus(); // back where the user was, not to the page's start
          }}
          onSend={(reason) => {
            setOverriding(false);
            onOverride(reason);
          }}
        />
      )}
    </>
  );
}
