/** An agent type's evals (`#/agents/<id>/evals`): run its suite (on the current version or a
 * chosen one, e.g. a candidate) and follow the run live, read a run's results with each failed
 * expectation beside the transcript that led to it (`?run=<run_id>`), compare two runs
 * scenario by scenario (`?compare=<a>,<b>`), list the runs newest first, and read the suite.
 *
 * The suite is shown read-only: it is edited as YAML/JSON through PUT /agents/{id}/suite. */
import "./evals.css";
import { useCallback, useEffect, useState } from "react";
import { get } from "../api";
import { ago, exactTime } from "../agents/format";
import { useRunSuite } from "../agents/GatePanels";
import type { AgentEditorState } from "../agents/useAgentEditor";
import { href, navigate } from "../router";
import { fetchRuns, fetchSuite, runStatus, type EvalRun } from "./api";
import { passRate, RunStatusChip, tokensText, wallTime } from "./format";
import { RunCompare } from "./RunCompare";
import { RunView } from "./RunView";

interface VersionEntry {
  version: number;
  candidate?: boolean;
}

export function EvalsTab({ editor, query }: { editor: AgentEditorState; query: URLSearchParams }) {
  const agentId = editor.agentId;
  const runId = query.get("run");
  const compare = (query.get("compare") ?? "").split(",").filter(Boolean);
  const [announcement, setAnnouncement] = useState("");
  const [listed, setListed] = useState(0);
  const reloadList = useCallback(() => setListed((n) => n + 1), []);
  // undefined while loading, null when the type has none (nothing to run then)
  const [suite, setSuite] = useState<Record<string, unknown> | null | undefined>(undefined);
  const [suiteError, setSuiteError] = useState<string | null>(null);
  useEffect(() => {
    fetchSuite(agentId).then(setSuite, (e: Error) => setSuiteError(e.message));
  }, [agentId]);

  return (
    <div className="evals">
      {/* Progress and results are announced from here: a region that exists before they change. */}
      <div className="visually-hidden" role="status" aria-live="polite" data-testid="eval-announcer">
        {announcement}
      </div>
      <RunPanel editor={editor} preset={query.get("version")} noSuite={suite === null} />
      {runId && <RunView key={runId} agentId={agentId} runId={runId} announce={setAnnouncement} onFinished={reloadList} />}
      {compare.length === 2 && <RunCompare key={compare.join(",")} agentId={agentId} a={compare[0]} b={compare[1]} />}
      <RunList agentId={agentId} reloadKey={`${listed}:${runId ?? ""}:${editor.writes}`} shown={runId} noSuite={suite === null} />
      <SuiteCard agentId={agentId} suite={suite} error={suiteError} />
    </div>
  );
}

/** The run button, on the current version (through routing, as a caller gets it) or a chosen
 * stored version (pinned, as `--version` does), candidates included. */
function RunPanel({ editor, preset, noSuite }: { editor: AgentEditorState; preset: string | null; noSuite: boolean }) {
  const agentId = editor.agentId;
  const suite = useRunSuite(agentId);
  const [versions, setVersions] = useState<VersionEntry[]>([]);
  const [chosen, setChosen] = useState(preset ?? "");
  const live = editor.server?.config.version;
  useEffect(() => {
    get<{ items: VersionEntry[] }>(`agents/${encodeURIComponent(agentId)}/versions`).then(
      (list) => setVersions(list.items),
      () => setVersions([]),
    );
  }, [agentId, editor.writes]);
  return (
    <section className="card run-panel" aria-labelledby="run-panel-title">
      <h2 id="run-panel-title">Run the suite</h2>
      <form
        className="run-form"
        onSubmit={(e) => {
          e.preventDefault();
          void suite.run(chosen === "" ? null : Number(chosen));
        }}
      >
        <label htmlFor="eval-version">Version to test</label>
        <select id="eval-version" value={chosen} onChange={(e) => setChosen(e.target.value)} data-testid="eval-version">
          <option value="">the live version (v{live}), through routing</option>
          {versions.map((v) => (
            <option key={v.version} value={v.version}>
              v{v.version}
              {v.version === live ? " (live)" : v.candidate ? " (candidate)" : ""}, pinned
            </option>
          ))}
        </select>
        <button type="submit" className="primary" disabled={suite.busy || noSuite} data-testid="eval-run">
          {suite.busy ? "Queuing…" : "Run suite"}
        </button>
      </form>
      {noSuite && (
        <p className="notice" data-testid="eval-no-suite">
          This type has no suite yet, so there is nothing to run: see Suite below.
        </p>
      )}
      <p className="hint">
        Each scenario is a real room through the running worker. A pinned version runs as stored, whether or not it is live; the live
        version is reached through the routing, as callers reach it.
      </p>
      {suite.error && (
        <p className="error" role="alert" data-testid="eval-run-error">
          {suite.error}
        </p>
      )}
    </section>
  );
}

function RunList({ agentId, reloadKey, shown, noSuite }: { agentId: string; reloadKey: string; shown: string | null; noSuite: boolean }) {
  const [runs, setRuns] = useState<EvalRun[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string[]>([]);
  useEffect(() => {
    let live = true;
    fetchRuns(agentId).then(
      (page) => live && (setRuns(page.items), setError(null)),
      (e: Error) => live && setError(e.message),
    );
    return () => {
      live = false;
    };
  }, [agentId, reloadKey]);
  // Two at most: picking a third lets go of the first picked.
  const toggle = (id: string, on: boolean) => setSelected((s) => (on ? [...s.filter((x) => x !== id), id].slice(-2) : s.filter((x) => x !== id)));

  return (
    <section className="card table-card run-list" aria-labelledby="run-list-title">
      <header className="run-list-head">
        <h2 id="run-list-title">Runs</h2>
        <span className="muted">newest first; pick two to compare</span>
        <button
          type="button"
          disabled={selected.length !== 2}
          onClick={() => navigate(`${href("agents", agentId, "evals")}?compare=${selected.map(encodeURIComponent).join(",")}`)}
          data-testid="eval-compare"
        >
          Compare the two picked
        </button>
      </header>
      {error && <p className="error" role="alert">{error}</p>}
      {runs && runs.length === 0 && (
        <p className="empty" data-testid="eval-runs-empty">
          {noSuite ? (
            "No runs: the type has no suite yet."
          ) : (
            <>
              No runs yet: press Run suite, or run <code>python -m evals run --agent {agentId}</code>.
            </>
          )}
        </p>
      )}
      {runs && runs.length > 0 && (
        <table className="list">
          <thead>
            <tr>
              <th>
                <span className="visually-hidden">Pick to compare</span>
              </th>
              <th>Version</th>
              <th>Result</th>
              <th>Scenarios (pass rate)</th>
              <th>Started</th>
              <th>Time</th>
              <th>Tokens (in / out)</th>
              <th>
                <span className="visually-hidden">Open</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {runs.map((run) => (
              <tr
                key={run.run_id}
                data-testid="eval-run-row"
                data-run-id={run.run_id}
                data-version={run.version}
                data-status={runStatus(run)}
                data-passed={run.passed == null ? "" : String(run.passed)}
                className={run.run_id === shown ? "current" : undefined}
              >
                <td>
                  <input
                    type="checkbox"
                    checked={selected.includes(run.run_id)}
                    onChange={(e) => toggle(run.run_id, e.target.checked)}
                    aria-label={`Pick the run on v${run.version} started ${exactTime(run.started_at)} to compare`}
                    data-testid="eval-run-select"
                  />
                </td>
                <td>
                  <strong>v{run.version}</strong> {run.pinned && <span className="muted">pinned</span>}
                </td>
                <td>
                  <RunStatusChip run={run} />
                </td>
                <td>
                  <ul className="rates">
                    {run.scenarios.map((s) => (
                      <li key={s.name}>
                        <span aria-hidden="true" className={s.passed ? "mark ok" : "mark bad"}>
                          {s.passed ? "✓" : "✗"}
                        </span>{" "}
                        {s.name}: <strong>{passRate(s.pass_rate)}</strong>
                        <span className="visually-hidden">{s.passed ? " (passed)" : " (failed)"}</span>
                      </li>
                    ))}
                  </ul>
                </td>
                <td title={exactTime(run.started_at)}>{ago(run.started_at)}</td>
                <td>{wallTime(run.wall_time_s)}</td>
                <td>{tokensText(run.tokens)}</td>
                <td>
                  <a href={`${href("agents", agentId, "evals")}?run=${encodeURIComponent(run.run_id)}`} data-testid="eval-run-open">
                    Open<span className="visually-hidden"> the run on v{run.version} started {exactTime(run.started_at)}</span>
                  </a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function SuiteCard({ agentId, suite, error }: { agentId: string; suite: Record<string, unknown> | null | undefined; error: string | null }) {
  const scenarios = (suite?.scenarios as { name?: string; repeat?: number }[] | undefined) ?? [];
  return (
    <section className="card suite-card" data-testid="eval-suite" data-state={suite === undefined ? "loading" : suite ? "shown" : "none"} aria-labelledby="suite-title">
      <h2 id="suite-title">Suite</h2>
      {error && <p className="error" role="alert">{error}</p>}
      {suite === null && (
        <p className="muted">
          This type has no suite: store one with <code>PUT /api/v1/agents/{agentId}/suite</code> (see the README's Evals section).
        </p>
      )}
      {suite && (
        <>
          {typeof suite.description === "string" && <p>{suite.description}</p>}
          <ol className="suite-scenarios">
            {scenarios.map((s, i) => (
              <li key={i} data-testid="eval-suite-scenario">
                {s.name}
                {s.repeat ? <span className="muted"> · repeated {s.repeat}×</span> : null}
              </li>
            ))}
          </ol>
          <details>
            <summary>The suite as stored (JSON)</summary>
            <p className="hint">Read-only here: a suite is replaced whole with PUT /api/v1/agents/{agentId}/suite, or from its YAML.</p>
            <pre className="suite-json" tabIndex={0} aria-label="The suite as JSON">
              {JSON.stringify(suite, null, 2)}
            </pre>
          </details>
        </>
      )}
    </section>
  );
}
