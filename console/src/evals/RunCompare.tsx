/** Two runs side by side (e.g. the live version's and a candidate's): per scenario, each run's
 * pass rate and what failed, in two columns, so a regression reads across a row. The older
 * version (or, for one version, the earlier run) is on the left, whichever was picked first. */
import { useEffect, useState } from "react";
import { href } from "../router";
import { fetchRun, type EvalRun, type ScenarioResult } from "./api";
import { passRate, RunStatusChip, tokensText, wallTime } from "./format";

export function RunCompare({ agentId, a, b }: { agentId: string; a: string; b: string }) {
  const [runs, setRuns] = useState<[EvalRun, EvalRun] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    Promise.all([fetchRun(a), fetchRun(b)]).then(
      ([first, second]) => setRuns(olderFirst(first, second) ? [first, second] : [second, first]),
      (e: Error) => setError(e.message),
    );
  }, [a, b]);
  if (error) return <p className="error" role="alert">{error}</p>;
  if (!runs) return <div className="empty">Loading the two runs…</div>;
  const names = [...new Set([...runs[0].scenarios, ...runs[1].scenarios].map((s) => s.name))];
  const find = (run: EvalRun, name: string) => run.scenarios.find((s) => s.name === name);
  const close = href("agents", agentId, "evals");

  return (
    <section
      className="card run-compare"
      data-testid="eval-compare-view"
      data-a={runs[0].run_id}
      data-b={runs[1].run_id}
      aria-labelledby="compare-title"
    >
      <header className="run-list-head">
        <h2 id="compare-title">
          v{runs[0].version} and v{runs[1].version} side by side
        </h2>
        <a href={close} className="button">
          Close the comparison
        </a>
      </header>
      <table className="list compare">
        <caption className="visually-hidden">Each scenario's pass rate and failures in the two runs</caption>
        <thead>
          <tr>
            <th scope="col">Scenario</th>
            {runs.map((run, i) => (
              <th scope="col" key={i}>
                v{run.version} <RunStatusChip run={run} />
                <div className="muted compare-meta">
                  {wallTime(run.wall_time_s)} · tokens {tokensText(run.tokens)}
                </div>
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {names.map((name) => (
            <tr key={name} data-testid="eval-compare-row" data-scenario={name}>
              <th scope="row">{name}</th>
              {runs.map((run, i) => (
                <CompareCell key={i} side={i === 0 ? "a" : "b"} scenario={find(run, name)} />
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function olderFirst(x: EvalRun, y: EvalRun): boolean {
  if (x.version !== y.version) return x.version < y.version;
  return (x.started_at ?? "") <= (y.started_at ?? "");
}

function CompareCell({ side, scenario }: { side: "a" | "b"; scenario: ScenarioResult | undefined }) {
  if (!scenario) {
    return (
      <td data-testid="eval-compare-cell" data-side={side} data-pass-rate="">
        <span className="muted">not in this run</span>
      </td>
    );
  }
  const failures = scenario.failures ?? [];
  // One line per failed expectation (every attempt that failed it counts once here).
  const byExpectation = new Map<string, { detail: string; attempts: number }>();
  for (const f of failures) {
    const seen = byExpectation.get(f.expectation);
    byExpectation.set(f.expectation, { detail: seen?.detail ?? f.detail, attempts: (seen?.attempts ?? 0) + 1 });
  }
  return (
    <td data-testid="eval-compare-cell" data-side={side} data-pass-rate={scenario.pass_rate} data-passed={String(scenario.passed)}>
      <span className={`chip ${scenario.passed ? "ok" : "bad"}`}>
        <span aria-hidden="true">{scenario.passed ? "✓ " : "✗ "}</span>
        {passRate(scenario.pass_rate)} {scenario.passed ? "passed" : "failed"}
      </span>
      {byExpectation.size > 0 && (
        <ul className="compare-failures">
          {[...byExpectation].map(([expectation, { detail, attempts }]) => (
            <li key={expectation}>
              <code>{expectation}</code>
              {attempts > 1 && <span className="muted"> ({attempts} attempts)</span>}
              <div className="muted">{detail}</div>
            </li>
          ))}
        </ul>
      )}
    </td>
  );
}
